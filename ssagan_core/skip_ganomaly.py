"""The official Skip-GANomaly generator (Akcay et al. 2019): the pix2pix U-Net with log2(image_size) downsamplings.

Layer for layer (and parameter for parameter) the `UnetGenerator(nc, nc, num_downs, ngf=64, BatchNorm)` of
samet-akcay/skip-ganomaly, written as explicit encoder and decoder lists instead of nested blocks.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class UnetGenerator(nn.Module):
    """(B, C, S, S) -> (B, C, S, S): 4x4 stride-2 convs down to 1x1 (widths ngf, 2, 4, 8, 8, ... x ngf), transposed
    convs back up, each decoder output concatenated after its encoder twin (skip first, as in the official code)."""

    def __init__(self, image_size: int, channels: int = 3, ngf: int = 64) -> None:
        super().__init__()
        n = int(math.log2(image_size))
        widths = [ngf * min(2**i, 8) for i in range(n)]  # encoder output widths, outermost first
        self.down = nn.ModuleList()
        for i, c in enumerate(widths):
            if i == 0:  # outermost: conv only
                self.down.append(nn.Conv2d(channels, c, 4, 2, 1, bias=False))
            elif i == n - 1:  # innermost: no norm
                self.down.append(
                    nn.Sequential(nn.LeakyReLU(0.2, inplace=True), nn.Conv2d(widths[i - 1], c, 4, 2, 1, bias=False))
                )
            else:
                self.down.append(
                    nn.Sequential(
                        nn.LeakyReLU(0.2, inplace=True),
                        nn.Conv2d(widths[i - 1], c, 4, 2, 1, bias=False),
                        nn.BatchNorm2d(c),
                    )
                )
        self.up = nn.ModuleList()
        for i in reversed(range(n)):  # innermost first
            c_in = widths[i] if i == n - 1 else 2 * widths[i]  # below the innermost, input = cat(skip, up)
            if i == 0:  # outermost: the only conv with a bias, then tanh
                self.up.append(
                    nn.Sequential(nn.ReLU(inplace=True), nn.ConvTranspose2d(c_in, channels, 4, 2, 1), nn.Tanh())
                )
            else:
                c_out = widths[i - 1]
                self.up.append(
                    nn.Sequential(
                        nn.ReLU(inplace=True),
                        nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                        nn.BatchNorm2d(c_out),
                    )
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for down in self.down:
            x = down(x)
            skips.append(x)
        skips.pop()  # the innermost output goes straight up
        for up in self.up[:-1]:
            x = torch.cat([skips.pop(), up(x)], dim=1)
        return self.up[-1](x)
