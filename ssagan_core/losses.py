"""The training objectives of each model family.

Skip models (ssagan, skip_ganomaly) follow the paper's section 2, equations 1-3, weighted as equation 8:
adversarial BCE on D(G(x)), contextual L1 |x - G(x)|, latent L2 between the discriminator features f(x), f(G(x)).
GANomaly (official code) uses feature matching as its adversarial term and L2 between the two latent codes; AnoGAN
is a plain DCGAN. The generator and discriminator objectives share one graph: the training loop back-propagates
each into its own network's parameters only, so the discriminator's forward pass on G(x) serves both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig


@dataclass
class LossTerms:
    g: torch.Tensor  # the generator's objective
    d: torch.Tensor  # the discriminator's objective
    parts: dict[str, torch.Tensor]  # named components, for logging


def _bce(logits: torch.Tensor, real: bool) -> torch.Tensor:
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def skip_losses(cfg: ModelConfig, g: nn.Module, d: nn.Module, x: torch.Tensor, x_in: torch.Tensor, rng) -> LossTerms:
    x_hat = g(x_in)
    logit_real, f_real = d.forward_logits(x)
    logit_fake, f_fake = d.forward_logits(x_hat)
    adv = _bce(logit_fake, real=True)  # G wants D to call G(x) real (eq. 1/5)
    ctx = F.l1_loss(x_hat, x)  # eq. 2
    lat = F.mse_loss(f_fake, f_real.detach())  # eq. 3/7
    loss_d = _bce(logit_real, real=True) + _bce(logit_fake, real=False)
    loss_g = cfg.w_adv * adv + cfg.w_ctx * ctx + cfg.w_lat * lat
    return LossTerms(loss_g, loss_d, {"adv": adv, "ctx": ctx, "lat": lat})


def ganomaly_losses(
    cfg: ModelConfig, g: nn.Module, d: nn.Module, x: torch.Tensor, x_in: torch.Tensor, rng
) -> LossTerms:
    x_hat, z, z_hat = g(x_in)
    logit_real, f_real = d.forward_logits(x)
    logit_fake, f_fake = d.forward_logits(x_hat)
    adv = F.mse_loss(f_fake, f_real.detach())  # feature matching, as the official code
    ctx = F.l1_loss(x_hat, x)
    lat = F.mse_loss(z_hat, z)  # the encoder loss: both encoders receive its gradient
    loss_d = 0.5 * (_bce(logit_real, real=True) + _bce(logit_fake, real=False))
    loss_g = cfg.w_adv * adv + cfg.w_ctx * ctx + cfg.w_lat * lat
    return LossTerms(loss_g, loss_d, {"adv": adv, "ctx": ctx, "lat": lat})


def anogan_losses(cfg: ModelConfig, g: nn.Module, d: nn.Module, x: torch.Tensor, x_in: torch.Tensor, rng) -> LossTerms:
    z = torch.randn(x.shape[0], cfg.nz, 1, 1, device=x.device, generator=rng)
    x_hat = g(z)
    if x.is_contiguous(memory_format=torch.channels_last):
        x_hat = x_hat.contiguous(memory_format=torch.channels_last)
    logit_real, _ = d.forward_logits(x)
    logit_fake, _ = d.forward_logits(x_hat)
    adv = _bce(logit_fake, real=True)
    loss_d = _bce(logit_real, real=True) + _bce(logit_fake, real=False)
    return LossTerms(cfg.w_adv * adv, loss_d, {"adv": adv})


LOSSES: dict[str, Callable[..., LossTerms]] = {
    "ssagan": skip_losses,
    "skip_ganomaly": skip_losses,
    "ganomaly": ganomaly_losses,
    "anogan": anogan_losses,
}
