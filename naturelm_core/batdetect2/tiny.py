"""Tiny random BatDetect2 checkpoints in the published file layout, built offline.

`build_tiny_checkpoint(path)` writes a ``.pth.tar`` that BatDetect2's own loader would read: the
UK model's params (front end, post-processing, 17 class names) with ``num_filters`` shrunk, and a
seeded random `Net2DFast` state dict with the published key names. The input height stays 128
(the front end's), so every shape except the channel widths is the real model's. Batch norms get
random running statistics so eval mode is not an identity.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from naturelm_core.batdetect2.checkpoint import write_checkpoint
from naturelm_core.batdetect2.config import BatDetect2Config
from naturelm_core.batdetect2.model import Net2DFast

TINY_NUM_FILTERS = 8  # published 128


def tiny_config(num_filters: int = TINY_NUM_FILTERS, **changes) -> BatDetect2Config:
    return dataclasses.replace(BatDetect2Config(), num_filters=num_filters, **changes)


def tiny_network(config: BatDetect2Config, seed: int = 23) -> Net2DFast:
    generator = torch.Generator().manual_seed(seed)
    network = Net2DFast(config)
    with torch.no_grad():
        for name, tensor in network.state_dict().items():
            if name.endswith("coords") or name.endswith("num_batches_tracked"):
                continue  # the coordinate channels stay the linspace BatDetect2 stores
            if name.endswith("running_var"):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator))
            else:
                tensor.copy_(0.3 * torch.randn(tensor.shape, generator=generator))
    return network.eval()


def build_tiny_checkpoint(path: Path, config: BatDetect2Config | None = None, seed: int = 23) -> Path:
    config = config or tiny_config()
    return write_checkpoint(Path(path), tiny_network(config, seed), config)
