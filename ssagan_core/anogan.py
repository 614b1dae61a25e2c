"""AnoGAN (Schlegl et al. 2017): a DCGAN trained on normal images; at test time each image's latent code is searched
so that G(z) matches it, and the remaining mismatch is the anomaly score."""

from __future__ import annotations

import torch
from torch import nn

from .dcgan import DcganDecoder

SEARCH_LR = 0.01  # Adam step size of the latent search (not given in the paper; common re-implementations' value)


class AnoganGenerator(DcganDecoder):
    """(B, nz, 1, 1) -> (B, C, S, S): the DCGAN generator."""

    def __init__(self, image_size: int, channels: int = 3, ngf: int = 64, nz: int = 100) -> None:
        super().__init__(image_size, nz, channels, ngf)
        self.nz = nz


def latent_search(
    generator: nn.Module,
    discriminator: nn.Module,
    x: torch.Tensor,
    steps: int,
    lam: float,
    z0: torch.Tensor,
    reconstruct: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Anomaly score per image (B,): min over z of (1 - lam) * sum|x - G(z)| + lam * sum|f(x) - f(G(z))|; with
    `reconstruct`, (score, G(z*)): the image the search found, AnoGAN's reconstruction (its anomaly map's source).

    The residual and discrimination losses of Schlegl et al. (section 2.2), f = the discriminator's last hidden
    features. Each image's z is optimised independently (Adam is element-wise and the losses are summed per image).
    Every image starts from the same `z0` (1, nz, 1, 1), so a score does not depend on the image's batch or
    position. Both networks must be in eval mode; only z receives gradients.
    """
    with torch.no_grad():
        _, f_x = discriminator(x)
    z = z0.expand(x.shape[0], -1, -1, -1).clone().requires_grad_()
    optimizer = torch.optim.Adam([z], lr=SEARCH_LR)
    for _ in range(steps):
        (z.grad,) = torch.autograd.grad(_search_loss(generator, discriminator, x, f_x, z, lam).sum(), z)
        optimizer.step()
    with torch.no_grad():
        loss, x_hat = _search_loss(generator, discriminator, x, f_x, z, lam, with_image=True)
    return (loss, x_hat) if reconstruct else loss


def _search_loss(generator, discriminator, x, f_x, z, lam, with_image: bool = False):
    x_hat = generator(z)
    _, f_hat = discriminator(x_hat)
    residual = (x - x_hat).abs().flatten(1).sum(1)
    discrimination = (f_x - f_hat).abs().flatten(1).sum(1)
    loss = (1 - lam) * residual + lam * discrimination  # (B,)
    return (loss, x_hat) if with_image else loss
