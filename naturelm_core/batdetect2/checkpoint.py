"""Finding and strictly loading a BatDetect2 checkpoint.

The UK model ships inside the ``batdetect2`` wheel as ``batdetect2/models/Net2DFast_UK_same.pth.tar``:
a torch pickle of ``{"epoch": int, "state_dict": {...}, "params": {...}}`` (7.6 MB). It is found
through the installed distribution's file list (`importlib.metadata`), never by importing the
package, whose ``__init__`` chain imports librosa and whose metadata wants torchaudio.

Every tensor key must match `Net2DFast`'s by name, shape and float-or-integer kind; anything else
is one `BatDetect2CheckpointError` line naming the keys (BatDetect2 itself loads strictly too).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any, Mapping

import torch

from naturelm_core import checkpoint_keys as keys
from naturelm_core.backend import BackendError
from naturelm_core.batdetect2.config import BatDetect2Config
from naturelm_core.batdetect2.model import Net2DFast
from naturelm_core.digest import file_sha256

DISTRIBUTION = "batdetect2"
DISTRIBUTION_VERSION = "1.3.1"
#: The shipped UK model, relative to the distribution's root.
UK_MODEL_FILE = "batdetect2/models/Net2DFast_UK_same.pth.tar"
LAYOUT = "the BatDetect2 Net2DFast layout"
INSTALL_HINT = (f"install it with `pip install --no-deps {DISTRIBUTION}=={DISTRIBUTION_VERSION}` "
                "(`make setup` does), or pass checkpoint=PATH to a BatDetect2 .pth.tar")
#: Keys named in a one-line error before "and N more".
NAMED_KEYS = 4


class BatDetect2CheckpointError(BackendError):
    """Weights that are missing, unreadable, or do not match the network."""


def shipped_checkpoint() -> Path:
    """The UK model file of the installed ``batdetect2`` distribution."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise BatDetect2CheckpointError(
            f"BatDetect2 weights not found: the {DISTRIBUTION} package, which ships them, is not "
            f"installed; {INSTALL_HINT}") from None
    path = Path(str(dist.locate_file(UK_MODEL_FILE)))
    if not path.is_file():
        raise BatDetect2CheckpointError(
            f"BatDetect2 weights not found: {path} is missing from the installed {DISTRIBUTION} "
            f"{dist.version}; {INSTALL_HINT}")
    return path


def read_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state_dict, params) of a BatDetect2 checkpoint file, read without running its code."""
    if not path.is_file():
        raise BatDetect2CheckpointError(f"BatDetect2 checkpoint {path}: not a file")
    try:
        blob = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors for damaged files
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise BatDetect2CheckpointError(
            f"BatDetect2 checkpoint {path}: cannot read as a torch checkpoint: "
            f"{type(exc).__name__}: {first_line}") from None
    if not (isinstance(blob, dict) and isinstance(blob.get("state_dict"), dict)
            and isinstance(blob.get("params"), dict)):
        found = sorted(map(str, blob)) if isinstance(blob, dict) else type(blob).__name__
        raise BatDetect2CheckpointError(
            f"BatDetect2 checkpoint {path}: expected a dict with 'state_dict' and 'params', found {found}")
    return blob["state_dict"], blob["params"]


def one_line(report: keys.KeyReport, source: str) -> str:
    """The key report as one line: counts, and the first few names of each kind."""
    parts = []
    for title, names in (("missing", report.missing), ("unexpected", report.unexpected),
                         ("mis-shaped", report.mis_shaped)):
        if names:
            shown = "; ".join(names[:NAMED_KEYS]) + (f"; and {len(names) - NAMED_KEYS} more" if len(names) > NAMED_KEYS else "")
            parts.append(f"{len(names)} {title} ({shown})")
    return f"{source}: does not match {report.layout}: " + ", ".join(parts)


def load_network(state: Mapping[str, Any], config: BatDetect2Config, source: str) -> Net2DFast:
    """`Net2DFast` for `config` with the state's tensors, in eval mode; every key must match."""
    network = Net2DFast(config)
    expected = network.state_dict()
    report = keys.compare(keys.signatures(state), expected, LAYOUT)
    if not report.ok:
        raise BatDetect2CheckpointError(one_line(report, source))
    network.load_state_dict({report.mapping[k]: v for k, v in state.items()}, strict=True)
    return network.eval()


def load(path: Path) -> tuple[Net2DFast, BatDetect2Config]:
    """The network and its config from a checkpoint file."""
    state, params = read_checkpoint(path)
    try:
        config = BatDetect2Config.from_params(params, source=f"BatDetect2 checkpoint {path}")
    except ValueError as err:
        raise BatDetect2CheckpointError(str(err)) from None
    return load_network(state, config, f"BatDetect2 checkpoint {path}"), config


def write_checkpoint(path: Path, network: Net2DFast, config: BatDetect2Config, epoch: int = 0) -> Path:
    """Save `network` in BatDetect2's file layout (tests and tiny checkpoints)."""
    torch.save({"epoch": epoch, "state_dict": network.state_dict(), "params": config.as_params()}, str(path))
    return path
