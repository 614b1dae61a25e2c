"""The official codes' discriminator reset (Skip-GANomaly and GANomaly restart a discriminator whose loss fell below
1e-5), with its random streams, in two forms that give the same weights: on the CPU the loss is read each step, on
CUDA the rule runs on the device so the loop never waits for the GPU (no `.item()` per iteration)."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from .factory import init_weights

_REINIT_STREAM = 1  # keeps the re-init streams apart from other (seed, ...) seed sequences


def reinit_stream(seed: int, reinit: int) -> torch.Generator:
    """The random stream of the run's `reinit`-th discriminator re-initialisation: a pure function of (seed, reinit),
    like the batch order and the noise, so a resumed run (its checkpoint holds `d_reinits`) draws the same weights
    as an uninterrupted one, whatever the global RNG did in between. A CPU stream: the same weights on every device."""
    stream = np.random.SeedSequence([seed, _REINIT_STREAM, reinit]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(stream))


class DiscriminatorReset:
    """`reinit_d_below`: after each step, re-initialise `discriminator` (`factory.init_weights` from
    `reinit_stream(seed, n)`, n = resets so far) when its loss is below `threshold`.

    `on_device=False` (CPU): the loss is read every step (`.item()`, free on the CPU) and `count` is always current.
    `on_device=True` (CUDA): the next reset's weights are drawn ahead and kept on the device; every step blends them
    in where `loss < threshold` (`torch.where` on a device flag: exact, no host sync) and adds the flag to a device
    counter; `settle()`, called where the loop synchronises anyway (its reports), reads the counter and draws the next
    reset's weights. The two forms give bit-identical runs while at most one reset falls between two reports; a
    second reset between the same two reports reuses the first one's weights (the official rule fires rarely)."""

    def __init__(self, discriminator: nn.Module, threshold: float, seed: int, count: int, on_device: bool) -> None:
        self.discriminator, self.threshold, self.seed, self.count = discriminator, threshold, seed, count
        self.on_device = on_device and threshold > 0
        if self.on_device:
            # What init_weights sets (conv and BatchNorm weights and biases); other parameters and all buffers stay.
            self._targets = _initialised(discriminator)
            self._pending = torch.zeros((), dtype=torch.int64, device=self._targets[0].device)
            self._draw()

    def after_step(self, loss_d: torch.Tensor) -> None:
        if not self.threshold:
            return
        if not self.on_device:
            if loss_d.item() < self.threshold:
                init_weights(self.discriminator, generator=reinit_stream(self.seed, self.count))
                self.count += 1
            return
        fire = loss_d.detach() < self.threshold  # () bool on the device
        with torch.no_grad():
            for p, fresh in zip(self._targets, self._fresh, strict=True):
                p.copy_(torch.where(fire, fresh, p))
        self._pending += fire

    def settle(self) -> int:
        """The number of resets so far (on CUDA a host read of the device counter; call it where the loop syncs)."""
        if self.on_device:
            fired = int(self._pending)
            if fired:
                self.count += fired
                self._pending.zero_()
                self._draw()
        return self.count

    def _draw(self) -> None:
        """The weights of reset number `count`: `init_weights` on a copy of the discriminator, kept on its device."""
        twin = copy.deepcopy(self.discriminator)
        init_weights(twin, generator=reinit_stream(self.seed, self.count))
        self._fresh = [p.detach() for p in _initialised(twin)]


def _initialised(net: nn.Module) -> list[nn.Parameter]:
    """The parameters `factory.init_weights` writes, in `named_parameters` order."""
    kinds = (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d)
    return [p for m in net.modules() if isinstance(m, kinds) for p in m.parameters(recurse=False)]
