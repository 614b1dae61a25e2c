"""The official Skip-GANomaly networks (samet-akcay/skip-ganomaly) as the benchmark's reference, loaded from a
checkout the user gives (`python -m ssagan_core.benchmark --reference PATH`): nothing of that code is part of this
project. Its `define_G` / `define_D` build the networks as its `train.py` does for one image size, and
`ReferenceDiscriminator` lets our training step drive its discriminator through the same losses as our
`skip_ganomaly` preset, so the two step rates compare networks, not loops."""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path

import torch
from torch import nn

NETWORKS_FILE = Path("lib/models/networks.py")  # where the official repository keeps define_G / define_D


def load_reference(checkout: str | Path, image_size: int) -> tuple[nn.Module, nn.Module]:
    """(generator, discriminator) of the official code at `image_size` with its defaults (ngf = ndf = 64, nz = 100,
    3 channels), on the CPU, initialised by its own `init_net` (from torch's global RNG)."""
    path = Path(checkout) / NETWORKS_FILE
    if not path.is_file():
        raise ValueError(f"--reference {checkout}: no {NETWORKS_FILE} there (a checkout of samet-akcay/skip-ganomaly)")
    spec = importlib.util.spec_from_file_location("skip_ganomaly_reference_networks", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        opt = types.SimpleNamespace(isize=image_size, nz=100, nc=3, ngf=64, ndf=64, ngpu=1, extralayers=0, gpu_ids=[])
        generator, discriminator = module.define_G(opt), module.define_D(opt)
    except Exception as e:  # their code, our error line: a broken or different checkout is bad input
        raise ValueError(f"--reference {checkout}: its networks do not build ({type(e).__name__}: {e})") from None
    return generator, ReferenceDiscriminator(discriminator)


class ReferenceDiscriminator(nn.Module):
    """The official `BasicDiscriminator` (features `feat`, then `clas` = 3x3 conv + sigmoid) with our
    discriminator's interface: `forward_logits` returns the classifier conv's output before its sigmoid (our losses
    take logits; BCE on logits equals the official sigmoid + BCELoss), and the features the latent loss compares."""

    def __init__(self, official: nn.Module) -> None:
        super().__init__()
        self.official = official

    def forward_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.official.feat(x)
        return self.official.clas[0](f).flatten(), f  # clas[0]: the classifier conv, clas[1]: its sigmoid

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, f = self.forward_logits(x)
        return torch.sigmoid(logits), f
