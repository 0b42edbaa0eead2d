"""What the audio-LLM family's loaders share: folders from paths or URIs, devices, attention.

A member's checkpoint module (`naturelm.checkpoint`, `salmonn.checkpoint`) knows its release's
key names; this module knows how to get files onto this machine (local paths, or any fsspec URI
copied once into a cache), which device and attention implementation to load on, and how to
fingerprint a folder. The key report itself is `naturelm_core.checkpoint_keys`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
from pathlib import Path
from typing import Iterable

import fsspec
import torch

from naturelm_core.backend import BackendError
from naturelm_core.digest import file_sha256 as file_digest

logger = logging.getLogger(__name__)


class CheckpointError(BackendError):
    """Weights or configs that do not match the model, or cannot be read."""


def default_cache_dir() -> Path:
    """Local copies of remote folders: $DAWNCHORUS_CACHE_DIR or ~/.cache/dawnchorus/models."""
    root = os.environ.get("DAWNCHORUS_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "dawnchorus" / "models"


def resolve_folder(uri: str, required: Iterable[str], cache_dir: Path | None = None, what: str = "folder") -> Path:
    """A local folder holding `uri`'s files: the path itself, or a cached copy of a remote URI.

    Remote folders (s3://, memory://, ...) are copied once into `cache_dir`/<hash of uri>; files
    whose size already matches are not copied again. `required` files must exist.
    """
    uri = str(uri)
    fs, root = fsspec.core.url_to_fs(uri)
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    if "file" in protocols or "local" in protocols:
        local = Path(root)
        if not local.is_dir():
            raise CheckpointError(f"{what} {uri}: not a directory")
    else:
        if not fs.isdir(root):
            raise CheckpointError(f"{what} {uri}: not a directory")
        local = (cache_dir or default_cache_dir()) / hashlib.sha256(uri.encode()).hexdigest()[:16]
        _mirror(fs, root, local)
    missing = [name for name in required if not (local / name).is_file()]
    if missing:
        raise CheckpointError(f"{what} {uri}: missing file(s) {missing}")
    return local


def resolve_file(uri: str, cache_dir: Path | None = None, what: str = "file") -> Path:
    """A local path holding `uri`'s bytes: the path itself, or a cached copy of a remote URI
    (copied once into `cache_dir`/<hash of uri>/<name>; kept while its size matches)."""
    uri = str(uri)
    fs, path = fsspec.core.url_to_fs(uri)
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    if "file" in protocols or "local" in protocols:
        local = Path(path)
        if not local.is_file():
            raise CheckpointError(f"{what} {uri}: not a file")
        return local
    if not fs.isfile(path):
        raise CheckpointError(f"{what} {uri}: not a file")
    dest = (cache_dir or default_cache_dir()) / hashlib.sha256(uri.encode()).hexdigest()[:16] / Path(path).name
    size = fs.info(path).get("size")
    if not (dest.is_file() and size is not None and dest.stat().st_size == size):
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".partial")
        fs.get_file(path, str(partial))
        partial.replace(dest)
        logger.info("copied %s -> %s", uri, dest)
    return dest


def _mirror(fs: fsspec.AbstractFileSystem, root: str, local: Path) -> None:
    root = root.rstrip("/")
    for remote, info in fs.find(root, detail=True).items():
        rel = remote[len(root) :].lstrip("/")
        dest = local / rel
        size = info.get("size")
        if dest.is_file() and size is not None and dest.stat().st_size == size:
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".partial")
        fs.get_file(remote, str(partial))
        partial.replace(dest)  # never leave a half-copied file under the real name
        logger.info("copied %s -> %s", remote, dest)


#: Attention implementations of the Llama, by transformers' names. "eager" is the plain reference
#: (the reference loads it unless flash_attn is set); "sdpa" is torch's fused attention, the CUDA
#: default; "flash_attention_2" needs the flash-attn package.
ATTN_IMPLEMENTATIONS: tuple[str, ...] = ("auto", "eager", "sdpa", "flash_attention_2")


def parse_device(device: str) -> torch.device:
    """"cpu", "cuda[:N]" or "auto" (CUDA when torch sees a GPU, e.g. in a Ray actor with num_gpus=1)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise CheckpointError(f"device {device!r} is not a torch device") from None
    if parsed.type not in ("cpu", "cuda"):
        raise CheckpointError(f"device {device!r}: only 'cpu' and 'cuda[:N]' are supported")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise CheckpointError(f"device {device!r} requested but CUDA is not available")
    return parsed


def resolve_attn_implementation(name: str, device: torch.device) -> str:
    """The attention implementation to load: "auto" is eager on CPU (the reference path) and SDPA on
    CUDA; flash_attention_2 only by name, and only when flash-attn imports."""
    if name not in ATTN_IMPLEMENTATIONS:
        raise CheckpointError(f"attn_implementation {name!r}: expected one of {list(ATTN_IMPLEMENTATIONS)}")
    if name == "auto":
        return "sdpa" if device.type == "cuda" else "eager"
    if name == "flash_attention_2":
        if device.type != "cuda":
            raise CheckpointError("attn_implementation 'flash_attention_2' needs a CUDA device")
        try:
            import flash_attn  # noqa: F401
        except ImportError:
            raise CheckpointError("attn_implementation 'flash_attention_2': the flash-attn package is not installed") from None
    return name


def folder_digest(folder: Path) -> str:
    """sha256 over a Llama folder's small files (configs, tokenizer) and its weights' headers."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".partial")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.suffix == ".safetensors":
            with path.open("rb") as f:
                (header_len,) = struct.unpack("<Q", f.read(8))
                digest.update(f.read(header_len))
        elif path.stat().st_size < (64 << 20):
            digest.update(path.read_bytes())
    return digest.hexdigest()


__all__ = [
    "ATTN_IMPLEMENTATIONS", "CheckpointError", "default_cache_dir", "file_digest", "folder_digest", "parse_device",
    "resolve_attn_implementation", "resolve_file", "resolve_folder",
]  # fmt: skip
