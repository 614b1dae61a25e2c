"""Build the generator and discriminator of any model preset from a `ModelConfig`."""

from __future__ import annotations

import torch
from torch import nn

from .anogan import AnoganGenerator
from .config import ModelConfig
from .dcgan import Discriminator
from .ganomaly import GanomalyGenerator
from .skip_ganomaly import UnetGenerator
from .ssagan import Generator

IMAGE_CHANNELS = 3


def build_generator(cfg: ModelConfig) -> nn.Module:
    """ssagan / skip_ganomaly: x -> x_hat; ganomaly: x -> (x_hat, z, z_hat); anogan: z -> x_hat. DCGAN-initialised."""
    if cfg.model == "ssagan":
        net = Generator(cfg, IMAGE_CHANNELS)
    elif cfg.model == "skip_ganomaly":
        net = UnetGenerator(cfg.image_size, IMAGE_CHANNELS, cfg.base_channels)
    elif cfg.model == "ganomaly":
        net = GanomalyGenerator(cfg.image_size, IMAGE_CHANNELS, cfg.base_channels, cfg.nz)
    else:
        net = AnoganGenerator(cfg.image_size, IMAGE_CHANNELS, cfg.base_channels, cfg.nz)
    return init_weights(net)


def build_discriminator(cfg: ModelConfig) -> nn.Module:
    """x -> (probability real (B,), features). Skip models use features of size nz from the last conv (the
    paper's f(x)); GANomaly and AnoGAN the DCGAN discriminator's last hidden layer."""
    feature_dim = cfg.nz if cfg.model in ("ssagan", "skip_ganomaly") else None
    return init_weights(Discriminator(cfg.image_size, IMAGE_CHANNELS, cfg.ndf, feature_dim))


def init_weights(net: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """DCGAN initialisation, as the official code's `weights_init`: conv weights N(0, 0.02), BatchNorm N(1, 0.02).

    Draws from the global RNG, or from `generator` (a CPU generator: values are drawn on the CPU and copied, so a
    generator's state gives the same weights on every device and in every memory format)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            _normal_(m.weight, 0.0, 0.02, generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            _normal_(m.weight, 1.0, 0.02, generator)
            nn.init.zeros_(m.bias)
    return net


def _normal_(weight: torch.Tensor, mean: float, std: float, generator: torch.Generator | None) -> None:
    if generator is None:
        nn.init.normal_(weight, mean, std)  # the initial weights' path, unchanged: torch.manual_seed(seed) decides
        return
    with torch.no_grad():
        weight.copy_(nn.init.normal_(torch.empty(weight.shape), mean, std, generator=generator))


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
