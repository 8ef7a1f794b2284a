"""The judge's network: a small CNN over a 64x64 image with one output head per factor reading.

Four stride-2 convolutions (64 -> 4 px) with batch norm, a hidden layer, then a linear head per factor whose
width is the reading's (``readings.Reading.outputs``). About 0.2M parameters at width 24: under 1 MB as float32 ONNX.
"""

from __future__ import annotations

import torch
from torch import nn


class JudgeNet(nn.Module):
    def __init__(self, channels: int, heads: dict[str, int], width: int = 32, hidden: int = 128) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = channels
        for c_out in (width, width, 2 * width, 2 * width):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
            c_in = c_out
        self.features = nn.Sequential(*layers, nn.Flatten())  # (B, 2*width*4*4)
        self.hidden = nn.Sequential(nn.Linear(c_in * 16, hidden), nn.ReLU())
        self.heads = nn.ModuleDict({name: nn.Linear(hidden, size) for name, size in heads.items()})

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        h = self.hidden(self.features(image))  # (B, C, 64, 64) -> (B, hidden)
        return tuple(head(h) for head in self.heads.values())  # each (B, outputs of its reading)
