"""What a model costs per image, counted rather than timed: forward FLOPs of the generator and the discriminator
(torch's `FlopCounterMode`), the hardware-free figure a user scales to their own machine (`--dry-run`, benchmark)."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .config import ModelConfig
from .factory import IMAGE_CHANNELS, build_discriminator, build_generator


def forward_flops(cfg: ModelConfig, networks: tuple[nn.Module, nn.Module] | None = None) -> dict[str, float]:
    """FLOPs of one image's forward pass through the generator and through the discriminator (a multiply-add counts
    2), in eval mode. A training step costs about 3x the forward of G plus 3 discriminator passes (two in
    the losses, backward through both); time it rather than count it (the counter's backward totals are not reliable
    for every op). Attention counts its Q K^T and A V matmuls as SDPA computes them."""
    # On the meta device: shapes only, no memory and no arithmetic, so the count at 256 px (where attention's N x N
    # would be 17 GB if an SDPA path materialised it) takes a fraction of a second; the count is the same.
    if networks is not None:
        generator, discriminator = (copy.deepcopy(net).to("meta") for net in networks)
    else:
        with torch.device("meta"):
            generator, discriminator = build_generator(cfg), build_discriminator(cfg)
    generator.eval(), discriminator.eval()
    with torch.device("meta"):
        if cfg.model == "anogan":
            g_input = torch.zeros(1, cfg.nz, 1, 1)
        else:
            g_input = torch.zeros(1, IMAGE_CHANNELS, cfg.image_size, cfg.image_size)
        x = torch.zeros(1, IMAGE_CHANNELS, cfg.image_size, cfg.image_size)
    flops = {}
    with torch.no_grad():
        for name, net, arg in (("generator", generator, g_input), ("discriminator", discriminator, x)):
            counter = FlopCounterMode(display=False)
            with counter:
                net(arg)
            flops[name] = float(counter.get_total_flops())
    return flops
