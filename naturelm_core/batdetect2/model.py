"""BatDetect2's Net2DFast network, with submodule names equal to the checkpoint's keys.

A U-Net over the (1, 128, W) spectrogram: three down blocks (conv + 2x2 max-pool) that each see
a frequency coordinate channel ("CoordF"), a bottleneck that collapses frequency to one row and
lets the time steps attend to each other, three bilinear up blocks (again with a coordinate
channel) fed with the encoder's features, and three 1x1 heads at full input resolution:

- classes: softmax over the species plus a background channel (last);
- detection: the species channels' total, i.e. 1 - P(background) (`pred_det`);
- size: the call's box width (time) and height (frequency) in resized spectrogram pixels.

Shapes for the UK model (num_filters F = 128, ip_height H = 128) and an input of width W:
(B, 1, 128, W) -> (B, 32, 64, W/2) -> (B, 64, 32, W/4) -> (B, 128, 16, W/8) -> (B, 256, 16, W/8)
-> bottleneck (B, 256, 1, W/8) -> (B, 64, 32, W/4) -> (B, 32, 64, W/2) -> (B, 32, 128, W).
W must be a multiple of 8; BatDetect2's padding makes it a multiple of 32.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from naturelm_core.batdetect2.config import BatDetect2Config


class NetOutput(NamedTuple):
    detection: torch.Tensor  # (B, 1, H, W): probability that a call is centred here
    size: torch.Tensor  # (B, 2, H, W): box width, height in resized spectrogram pixels (>= 0)
    classes: torch.Tensor  # (B, C + 1, H, W): softmax over the classes and background (last)


def _coordinates(height: int) -> torch.Tensor:
    """(1, 1, height, 1): the frequency coordinate channel, -1 at the top row to 1 at the bottom."""
    return torch.linspace(-1, 1, height)[None, None, :, None]


class SelfAttention(nn.Module):
    """Attention across time steps of the one-row bottleneck; no position encoding.

    Scores are key_i . query_j / att_dim, normalised over the keys i for each query j, and each
    output step j is the scores' mix of the values, projected back to the input width.
    """

    def __init__(self, in_dim: int, att_dim: int):
        super().__init__()
        self.att_dim = att_dim
        self.key_fun = nn.Linear(in_dim, att_dim)
        self.val_fun = nn.Linear(in_dim, att_dim)
        self.que_fun = nn.Linear(in_dim, att_dim)
        self.pro_fun = nn.Linear(att_dim, in_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = x.squeeze(2).transpose(1, 2)  # (B, C, 1, T) -> (B, T, C)
        keys = self.key_fun(steps)  # (B, T, A)
        queries = self.que_fun(steps)  # (B, T, A)
        values = self.val_fun(steps)  # (B, T, A)
        scores = torch.bmm(keys, queries.transpose(1, 2)) / self.att_dim  # (B, T_key, T_query)
        weights = torch.softmax(scores, dim=1)  # over the keys, for each query
        mixed = torch.bmm(values.transpose(1, 2), weights)  # (B, A, T_query)
        return self.pro_fun(mixed.transpose(1, 2)).transpose(1, 2).unsqueeze(2)  # (B, C, 1, T)


class DownBlockCoordF(nn.Module):
    """conv 3x3 over (features + coordinate channel) -> 2x2 max-pool -> batch norm -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, height: int):
        super().__init__()
        self.register_buffer("coords", _coordinates(height))
        self.conv = nn.Conv2d(in_channels + 1, out_channels, kernel_size=3, padding=1)
        self.conv_bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        coords = self.coords.expand(x.shape[0], 1, -1, x.shape[3])  # (B, 1, H, W)
        x = F.max_pool2d(self.conv(torch.cat([x, coords], dim=1)), 2, 2)
        return F.relu(self.conv_bn(x))


class UpBlockCoordF(nn.Module):
    """bilinear 2x upsampling -> conv 3x3 over (features + coordinate channel) -> BN -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, height: int):
        super().__init__()
        self.register_buffer("coords", _coordinates(height * 2))
        self.conv = nn.Conv2d(in_channels + 1, out_channels, kernel_size=3, padding=1)
        self.conv_bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(x.shape[-2] * 2, x.shape[-1] * 2), mode="bilinear", align_corners=False)
        coords = self.coords.expand(x.shape[0], 1, -1, x.shape[3])
        return F.relu(self.conv_bn(self.conv(torch.cat([x, coords], dim=1))))


class Net2DFast(nn.Module):
    """The published BatDetect2 network (``model_name`` "Net2DFast")."""

    def __init__(self, config: BatDetect2Config):
        super().__init__()
        filters, height = config.num_filters, config.ip_height
        self.num_classes = len(config.class_names)
        self.bottleneck_repeat = (height // 32) * 4  # the one-row bottleneck is tiled to H / 8 rows
        # encoder
        self.conv_dn_0 = DownBlockCoordF(1, filters // 4, height)
        self.conv_dn_1 = DownBlockCoordF(filters // 4, filters // 2, height // 2)
        self.conv_dn_2 = DownBlockCoordF(filters // 2, filters, height // 4)
        self.conv_dn_3 = nn.Conv2d(filters, filters * 2, 3, padding=1)
        self.conv_dn_3_bn = nn.BatchNorm2d(filters * 2)
        # bottleneck: a conv as tall as the remaining H / 8 rows collapses frequency
        self.conv_1d = nn.Conv2d(filters * 2, filters * 2, (height // 8, 1), padding=0)
        self.conv_1d_bn = nn.BatchNorm2d(filters * 2)
        self.att = SelfAttention(filters * 2, filters * 2)
        # decoder
        self.conv_up_2 = UpBlockCoordF(filters * 2, filters // 2, height // 8)
        self.conv_up_3 = UpBlockCoordF(filters // 2, filters // 4, height // 4)
        self.conv_up_4 = UpBlockCoordF(filters // 4, filters // 4, height // 2)
        # heads
        self.conv_op = nn.Conv2d(filters // 4, filters // 4, kernel_size=3, padding=1)
        self.conv_op_bn = nn.BatchNorm2d(filters // 4)
        self.conv_size_op = nn.Conv2d(filters // 4, 2, kernel_size=1)
        self.conv_classes_op = nn.Conv2d(filters // 4, self.num_classes + 1, kernel_size=1)
        if config.emb_dim > 0:  # trained for individual embeddings; unused at inference
            self.conv_emb = nn.Conv2d(filters, config.emb_dim, kernel_size=1)

    def forward(self, spec: torch.Tensor) -> NetOutput:
        """spec: (B, 1, ip_height, W) float32, W a multiple of 8."""
        x1 = self.conv_dn_0(spec)  # (B, F/4, H/2, W/2)
        x2 = self.conv_dn_1(x1)  # (B, F/2, H/4, W/4)
        x3 = self.conv_dn_2(x2)  # (B, F, H/8, W/8)
        x3 = F.relu(self.conv_dn_3_bn(self.conv_dn_3(x3)))  # (B, 2F, H/8, W/8)
        x = F.relu(self.conv_1d_bn(self.conv_1d(x3)))  # (B, 2F, 1, W/8)
        x = self.att(x)
        x = x.repeat(1, 1, self.bottleneck_repeat, 1)  # (B, 2F, H/8, W/8)
        x = self.conv_up_2(x + x3)  # (B, F/2, H/4, W/4)
        x = self.conv_up_3(x + x2)  # (B, F/4, H/2, W/2)
        x = self.conv_up_4(x + x1)  # (B, F/4, H, W)
        x = F.relu(self.conv_op_bn(self.conv_op(x)))
        classes = torch.softmax(self.conv_classes_op(x), dim=1)  # (B, C + 1, H, W)
        detection = classes[:, :-1].sum(dim=1, keepdim=True)  # (B, 1, H, W)
        return NetOutput(detection, F.relu(self.conv_size_op(x)), classes)
