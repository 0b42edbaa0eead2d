"""BatDetect2's parameters, as its checkpoint stores them, and the species its UK model knows.

A BatDetect2 checkpoint (``torch.save`` of ``{"epoch", "state_dict", "params"}``) carries the
parameters it was trained with; BatDetect2's API runs with those (``api.get_config()`` merges its
defaults with the checkpoint's ``params``). `BatDetect2Config.from_params` reads the same keys, so
a fine-tuned checkpoint brings its own settings, and the defaults below are the published UK
model's (``batdetect2/detector/parameters.py`` of 1.3.1 and the shipped file agree on every one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Mapping, NamedTuple

#: Spectrogram scalings BatDetect2 knows (``params["spec_scale"]``).
SPEC_SCALES = ("pcen", "log", "none")
#: Network variants this module builds (``params["model_name"]``): the shipped model's only.
MODEL_NAMES = ("Net2DFast",)

# BatDetect2 1.3.1's processing defaults that are not in a checkpoint's params.
#: Seconds per chunk in ``api.process_file`` (``DEFAULT_PROCESSING_CONFIGURATIONS["chunk_size"]``);
#: the command line's ``--chunk_size`` defaults to 2 s instead.
API_CHUNK_S = 3.0


class BatSpecies(NamedTuple):
    common_name: str
    scientific_name: str


#: The UK model's 17 classes, by the name its checkpoint gives (BatDetect2's answer), with an
#: English common name and the accepted scientific name. The checkpoint spells the barbastelle
#: "Barbastellus barbastellus"; the genus is Barbastella.
UK_SPECIES: dict[str, BatSpecies] = {
    "Barbastellus barbastellus": BatSpecies("Western Barbastelle", "Barbastella barbastellus"),
    "Eptesicus serotinus": BatSpecies("Serotine", "Eptesicus serotinus"),
    "Myotis alcathoe": BatSpecies("Alcathoe Bat", "Myotis alcathoe"),
    "Myotis bechsteinii": BatSpecies("Bechstein's Bat", "Myotis bechsteinii"),
    "Myotis brandtii": BatSpecies("Brandt's Bat", "Myotis brandtii"),
    "Myotis daubentonii": BatSpecies("Daubenton's Bat", "Myotis daubentonii"),
    "Myotis mystacinus": BatSpecies("Whiskered Bat", "Myotis mystacinus"),
    "Myotis nattereri": BatSpecies("Natterer's Bat", "Myotis nattereri"),
    "Nyctalus leisleri": BatSpecies("Leisler's Bat", "Nyctalus leisleri"),
    "Nyctalus noctula": BatSpecies("Noctule", "Nyctalus noctula"),
    "Pipistrellus nathusii": BatSpecies("Nathusius' Pipistrelle", "Pipistrellus nathusii"),
    "Pipistrellus pipistrellus": BatSpecies("Common Pipistrelle", "Pipistrellus pipistrellus"),
    "Pipistrellus pygmaeus": BatSpecies("Soprano Pipistrelle", "Pipistrellus pygmaeus"),
    "Plecotus auritus": BatSpecies("Brown Long-eared Bat", "Plecotus auritus"),
    "Plecotus austriacus": BatSpecies("Grey Long-eared Bat", "Plecotus austriacus"),
    "Rhinolophus ferrumequinum": BatSpecies("Greater Horseshoe Bat", "Rhinolophus ferrumequinum"),
    "Rhinolophus hipposideros": BatSpecies("Lesser Horseshoe Bat", "Rhinolophus hipposideros"),
}

#: The published UK model's classes in its channel order (the shipped checkpoint's class_names).
UK_CLASS_NAMES: tuple[str, ...] = tuple(UK_SPECIES)


@dataclass(frozen=True)
class BatDetect2Config:
    """Everything that turns audio into calls, besides the weights. Defaults: the UK model.

    Field names are BatDetect2's parameter names (units added where it has none in the name).
    """

    #: Rate the audio is resampled to before anything else (``target_samp_rate``).
    sample_rate_hz: int = 256_000
    #: STFT window length in seconds (``fft_win_length``): 512 samples at 256 kHz.
    fft_win_length_s: float = 512 / 256_000.0
    #: Fraction of a window shared with the next (``fft_overlap``): hop = 128 samples.
    fft_overlap: float = 0.75
    #: The spectrogram keeps this band (``min_freq``, ``max_freq``); the rest is cropped off.
    min_freq_hz: float = 10_000
    max_freq_hz: float = 120_000
    #: The cropped spectrogram is resized to (spec_height * resize_factor) rows and its width
    #: times resize_factor (``spec_height``, ``resize_factor``).
    spec_height: int = 256
    resize_factor: float = 0.5
    #: The resized width is padded (with audio zeros) to a multiple of this (``spec_divide_factor``).
    spec_divide_factor: int = 32
    #: "pcen" (per-channel energy normalisation), "log" or "none" (``spec_scale``).
    spec_scale: str = "pcen"
    #: Subtract each frequency row's mean over time, then clip at 0 (``denoise_spec_avg``).
    denoise_spec_avg: bool = True
    #: Divide the spectrogram by its maximum (``max_scale_spec``).
    max_scale_spec: bool = False
    #: Side of the square max-pool window of the heatmap's non-maximum suppression, in resized
    #: spectrogram pixels (``nms_kernel_size``).
    nms_kernel_size: int = 9
    #: Peaks kept per second before the threshold (``nms_top_k_per_sec``; see `postprocess.top_k`).
    nms_top_k_per_sec: float = 200
    #: Calls whose detection probability exceeds this are kept (``detection_threshold``): the
    #: API's default, 0.01. The command line has no default (its README runs 0.3).
    detection_threshold: float = 0.01
    #: The network (``model_name``, ``num_filters``, ``ip_height``, ``emb_dim``).
    model_name: str = "Net2DFast"
    num_filters: int = 128
    ip_height: int = 128
    emb_dim: int = 0
    #: The classes, in the order of the network's class channels (``class_names``).
    class_names: tuple[str, ...] = UK_CLASS_NAMES

    def __post_init__(self) -> None:
        problems = []
        if self.spec_scale not in SPEC_SCALES:
            problems.append(f"spec_scale {self.spec_scale!r} is not one of {list(SPEC_SCALES)}")
        if self.model_name not in MODEL_NAMES:
            problems.append(f"model_name {self.model_name!r} is not one of {list(MODEL_NAMES)}")
        if not 0 <= self.min_freq_hz < self.max_freq_hz <= self.sample_rate_hz / 2:
            problems.append(f"band {self.min_freq_hz}-{self.max_freq_hz} Hz does not fit under "
                            f"half of {self.sample_rate_hz} Hz")
        if self.input_height != self.ip_height:
            problems.append(f"the spectrogram has {self.input_height} rows (spec_height x "
                            f"resize_factor) but the network takes ip_height={self.ip_height}")
        if self.ip_height % 32 or self.num_filters % 4 or self.num_filters < 4:
            problems.append(f"ip_height must be a multiple of 32 and num_filters of 4, got "
                            f"{self.ip_height} and {self.num_filters}")
        if self.n_fft < 2 or self.hop_samples < 1:
            problems.append(f"STFT of {self.n_fft} samples with hop {self.hop_samples} is not usable")
        if problems:
            raise ValueError("; ".join(problems))

    # Derived sizes, computed as BatDetect2 computes them (int() truncation and round() included).
    @property
    def n_fft(self) -> int:
        return int(self.fft_win_length_s * self.sample_rate_hz)  # 512

    @property
    def n_overlap(self) -> int:
        return int(self.fft_overlap * self.n_fft)  # 384

    @property
    def hop_samples(self) -> int:
        return self.n_fft - self.n_overlap  # 128

    @property
    def crop_rows(self) -> tuple[int, int]:
        """(rows from the top, rows from the bottom) of the flipped, DC-less spectrogram that hold
        the band: BatDetect2 converts Hz to rows by multiplying with the window length in seconds."""
        return round(self.max_freq_hz * self.fft_win_length_s), round(self.min_freq_hz * self.fft_win_length_s)

    @property
    def input_height(self) -> int:
        return int(self.spec_height * self.resize_factor)  # 128

    @property
    def band_hz(self) -> tuple[float, float]:
        return float(self.min_freq_hz), float(self.max_freq_hz)

    @classmethod
    def from_params(cls, params: Mapping[str, Any], source: str = "checkpoint") -> "BatDetect2Config":
        """The config a checkpoint's ``params`` describe; ValueError naming missing or bad keys."""
        missing = [key for key in _PARAM_KEYS.values() if key not in params]
        if missing:
            raise ValueError(f"{source}: params lack {', '.join(missing)}")
        if params.get("scale_raw_audio"):
            # BatDetect2 then rescales each whole file to [-1, 1], which no window can reproduce.
            raise ValueError(f"{source}: params scale_raw_audio=True (whole-file rescaling) is not supported")
        values: dict[str, Any] = {}
        for name, key in _PARAM_KEYS.items():
            value = params[key]
            values[name] = tuple(str(c) for c in value) if name == "class_names" else value
        try:
            return cls(**values)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: {err}") from None

    def as_params(self) -> dict[str, Any]:
        """The ``params`` entry of a checkpoint with this config (tiny test checkpoints)."""
        out = {key: getattr(self, name) for name, key in _PARAM_KEYS.items()}
        out["class_names"] = list(self.class_names)
        out["scale_raw_audio"] = False
        return out


#: Field -> BatDetect2's parameter key.
_PARAM_KEYS: dict[str, str] = {
    f.name: {"sample_rate_hz": "target_samp_rate", "fft_win_length_s": "fft_win_length",
             "min_freq_hz": "min_freq", "max_freq_hz": "max_freq", "num_filters": "num_filters"}.get(f.name, f.name)
    for f in fields(BatDetect2Config)
}
assert math.isclose(BatDetect2Config().fft_win_length_s * 256_000, 512)


def species_of(class_name: str) -> BatSpecies:
    """Common and scientific name of a class; a class outside the UK list (a fine-tuned model's)
    keeps its own name for both."""
    return UK_SPECIES.get(class_name, BatSpecies(class_name, class_name))
