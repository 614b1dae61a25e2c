"""The GANomaly generator (Akcay et al. 2018): encoder -> decoder -> encoder, as the official `NetG`."""

from __future__ import annotations

import torch
from torch import nn

from .dcgan import DcganDecoder, DcganEncoder


class GanomalyGenerator(nn.Module):
    """(B, C, S, S) -> (x_hat, z, z_hat): z = E1(x), x_hat = Dec(z), z_hat = E2(x_hat); the anomaly score is
    mean((z - z_hat)^2)."""

    def __init__(self, image_size: int, channels: int = 3, ngf: int = 64, nz: int = 100) -> None:
        super().__init__()
        self.encoder1 = DcganEncoder(image_size, channels, ngf, nz)
        self.decoder = DcganDecoder(image_size, nz, channels, ngf)
        self.encoder2 = DcganEncoder(image_size, channels, ngf, nz)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = self.encoder1(x)  # (B, nz, 1, 1)
        x_hat = self.decoder(z)
        return x_hat, z, self.encoder2(x_hat)
