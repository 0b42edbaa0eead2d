"""One checkpoint key report for every model family (NatureLM-audio, SALMONN, CLAP).

A loader lists what the file holds (key -> `Signature`: shape and float-or-integer kind, or a
string saying what non-tensor value it is) and what the model expects (key -> tensor); `compare`
maps file keys to model keys through the family's aliases and skips, and returns a `KeyReport`
whose `message` names every missing, unexpected and mis-shaped key. Loaders raise their own error
type with that message; nothing is loaded unless the report is clean (the references load with
`strict=False` and hide mismatches: we do not).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, NamedTuple

import torch


class Signature(NamedTuple):
    """What a file holds under one key, without reading the values."""

    shape: tuple[int, ...]
    is_float: bool


def signature(tensor: torch.Tensor) -> Signature:
    return Signature(tuple(tensor.shape), tensor.is_floating_point())


def signatures(state: Mapping[str, object]) -> dict[str, Signature | str]:
    """Signatures of a loaded state dict; non-tensor values become a string naming their type."""
    return {k: signature(v) if isinstance(v, torch.Tensor) else f"a {type(v).__name__}, not a tensor"
            for k, v in state.items()}


@dataclass
class KeyReport:
    """What a checkpoint file holds against what a model expects."""

    layout: str  # "the NatureLM-audio layout", "the SALMONN release layout", ...
    mapping: dict[str, str] = field(default_factory=dict)  # file key -> model key, to copy
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mis_shaped: list[str] = field(default_factory=list)  # "key: file float (a, b) vs model (c, d)"
    skipped: list[str] = field(default_factory=list)  # known extras the family ignores (aliases, legacy buffers)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mis_shaped)

    def message(self, source: str) -> str:
        lines = [f"{source}: does not match {self.layout}"]
        for title, keys in (("missing", self.missing), ("unexpected", self.unexpected), ("mis-shaped", self.mis_shaped)):
            if keys:
                lines.append(f"  {len(keys)} {title} key(s):")
                lines.extend(f"    {k}" for k in keys)
        return "\n".join(lines)


def compare(
    found: Mapping[str, Signature | str],
    targets: Mapping[str, torch.Tensor],
    layout: str,
    canonical: Callable[[str], str] = lambda key: key,
    skip: Callable[[str], bool] = lambda name: False,
) -> KeyReport:
    """Match file keys against model keys.

    `canonical` turns a file key into the model's key (aliases); `skip(name)` is true for keys the
    family knows and ignores (they go to `skipped`). Two file keys that alias one model key are a
    problem ("a second copy"), as is a shape or float/integer kind that differs from the model's.
    """
    report = KeyReport(layout)
    seen: set[str] = set()
    for key in sorted(found):
        sig = found[key]
        name = canonical(key)
        if skip(name):
            report.skipped.append(key)
            continue
        target = targets.get(name)
        if target is None:
            report.unexpected.append(key)
        elif name in seen:
            report.unexpected.append(f"{key} (a second copy of {name})")
        elif isinstance(sig, str):
            report.mis_shaped.append(f"{key}: file holds {sig}")
        elif tuple(sig.shape) != tuple(target.shape) or sig.is_float != target.is_floating_point():
            kind = "float" if sig.is_float else "integer"
            report.mis_shaped.append(f"{key}: file {kind} {tuple(sig.shape)} vs model {tuple(target.shape)}")
        else:
            report.mapping[key] = name
        seen.add(name)
    report.missing = sorted(k for k in targets if k not in seen)
    return report


__all__ = ["KeyReport", "Signature", "compare", "signature", "signatures"]
