"""DCGAN encoder and decoder pyramids (Radford et al. 2015) as used by the official GANomaly / Skip-GANomaly code,
and the discriminator built from them."""

from __future__ import annotations

import torch
from torch import nn


class DcganEncoder(nn.Sequential):
    """(B, C, S, S) -> (B, out_channels, 1, 1): 4x4 stride-2 convs doubling the width down to 4x4, then a 4x4 conv.

    Layer for layer the official `Encoder`: first conv + LeakyReLU(0.2) without BatchNorm, then conv + BN + LeakyReLU
    per halving, no conv biases; the activations work in place, as there (each on a conv's or BatchNorm's output,
    which their backward does not read). With `final_conv=False` it stops at the (B, width * S/8, 4, 4) pyramid output.
    """

    def __init__(self, image_size: int, in_channels: int, width: int, out_channels: int, final_conv: bool = True):
        super().__init__()
        self.append(nn.Conv2d(in_channels, width, 4, 2, 1, bias=False))
        self.append(nn.LeakyReLU(0.2, inplace=True))
        size, c = image_size // 2, width
        while size > 4:
            self.extend(
                [nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * c), nn.LeakyReLU(0.2, inplace=True)]
            )
            size, c = size // 2, 2 * c
        self.out_width = c
        if final_conv:
            self.append(nn.Conv2d(c, out_channels, 4, 1, 0, bias=False))
            self.out_width = out_channels


class DcganDecoder(nn.Sequential):
    """(B, nz, 1, 1) -> (B, C, S, S) in [-1, 1]: the official `Decoder` (a DCGAN generator), transposed convs halving
    the width from width * S/8 at 4x4 up to the image, BatchNorm + ReLU, tanh."""

    def __init__(self, image_size: int, nz: int, out_channels: int, width: int) -> None:
        super().__init__()
        c = width * image_size // 8  # the width at 4x4, halved per doubling down to `width` at S/2
        self.extend([nn.ConvTranspose2d(nz, c, 4, 1, 0, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)])
        size = 4
        while size < image_size // 2:
            self.extend(
                [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(c // 2), nn.ReLU(inplace=True)]
            )
            size, c = size * 2, c // 2
        self.extend([nn.ConvTranspose2d(c, out_channels, 4, 2, 1, bias=False), nn.Tanh()])


class Discriminator(nn.Module):
    """(B, C, S, S) -> (probability real (B,), features).

    `feature_dim` given (Skip-GANomaly's `NetDv2`, used by ssagan and skip_ganomaly): the features are the last conv
    layer's (B, feature_dim, 1, 1) output, the paper's f(x) for the latent loss and score, and the head is a 3x3 conv
    + sigmoid. `feature_dim=None` (GANomaly's `NetD`, also AnoGAN's DCGAN discriminator): the features are the
    4x4 pyramid output and the head is the final 4x4 conv + sigmoid.
    """

    def __init__(self, image_size: int, in_channels: int, width: int, feature_dim: int | None) -> None:
        super().__init__()
        self.features = DcganEncoder(
            image_size, in_channels, width, feature_dim or 1, final_conv=feature_dim is not None
        )
        if feature_dim is not None:
            self.head = nn.Conv2d(feature_dim, 1, 3, 1, 1, bias=False)
        else:
            self.head = nn.Conv2d(self.features.out_width, 1, 4, 1, 0, bias=False)

    def forward_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (B,), features): the losses use logits, which are safe under autocast and numerically stable."""
        f = self.features(x)
        return self.head(f).flatten(), f

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, f = self.forward_logits(x)
        return torch.sigmoid(logits), f
