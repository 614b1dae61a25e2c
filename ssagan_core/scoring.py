"""Anomaly scores of a trained model, always in eval mode (BatchNorm uses its running statistics, so an image's
score does not depend on which other images share its batch, unlike the official code's train-mode scoring)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .anogan import latent_search
from .config import ModelConfig
from .pixel_metrics import default_sigma, error_map


def score_images(
    cfg: ModelConfig,
    generator: nn.Module,
    discriminator: nn.Module,
    images: torch.Tensor,
    batch_size: int,
    channels_last: bool = False,
    seed: int = 0,
    maps: bool = False,
) -> dict[str, np.ndarray]:
    """Scores of uint8 images (N, 3, H, W) already on the model's device: {"score", and its parts where defined}.

    ssagan / skip_ganomaly: score = lambda * mean((x - G(x))^2) + (1 - lambda) * mean((f(x) - f(G(x)))^2)
    (Skip-GANomaly's score, section 3.4 of its paper), parts `rec` and `lat`; also `rec_max`, the maximum of the
    smoothed error map, which replaces `rec` in the score under `cfg.score_reduce: max` (and joins it under
    `mean_max`, whose raw mix `combine_parts` replaces). ganomaly: mean((z - z_hat)^2).
    anogan: the latent-search loss. Raw scores: nothing is normalised with test-set statistics.
    With `maps`, also "map": (N, H, W) float32 anomaly maps from the reconstruction (`pixel_metrics.error_map`, sigma
    `cfg.map_sigma` or the default for the image size), computed in the same eval-mode pass (anogan: from G(z*), the
    image its latent search found).
    """
    sigma = default_sigma(images.shape[-1]) if cfg.map_sigma is None else cfg.map_sigma
    generator.eval()
    discriminator.eval()
    z0 = None
    if cfg.model == "anogan":
        rng = torch.Generator().manual_seed(seed)
        z0 = torch.randn(1, cfg.nz, 1, 1, generator=rng).to(images.device)
    parts: dict[str, list[torch.Tensor]] = {}
    for start in range(0, len(images), batch_size):
        x = to_float(images[start : start + batch_size])
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        for name, value in _score_batch(cfg, generator, discriminator, x, z0, sigma, maps).items():
            parts.setdefault(name, []).append(value.float().cpu())
    if not parts:
        return {"score": np.zeros(0, np.float64)}
    return {
        name: torch.cat(values).numpy() if name == "map" else torch.cat(values).double().numpy()
        for name, values in parts.items()
    }


def _score_batch(cfg, generator, discriminator, x, z0, sigma, maps) -> dict[str, torch.Tensor]:
    if cfg.model == "anogan":  # needs gradients with respect to z, so it cannot run under inference_mode
        if not maps:
            return {"score": latent_search(generator, discriminator, x, cfg.anogan_steps, cfg.anogan_lambda, z0)}
        score, x_hat = latent_search(
            generator, discriminator, x, cfg.anogan_steps, cfg.anogan_lambda, z0, reconstruct=True
        )
        return {"score": score, "map": error_map(x, x_hat, sigma)}
    with torch.inference_mode():
        if cfg.model == "ganomaly":
            x_hat, z, z_hat = generator(x)
            out = {"score": (z - z_hat).pow(2).flatten(1).mean(1)}
            if maps:
                out["map"] = error_map(x, x_hat, sigma)
            return out
        x_hat = generator(x)
        _, f = discriminator(x)
        _, f_hat = discriminator(x_hat)
        anomaly_map = error_map(x, x_hat, sigma)
        out = {
            "rec": (x - x_hat).pow(2).flatten(1).mean(1),
            "rec_max": anomaly_map.flatten(1).amax(1),
            "lat": (f - f_hat).pow(2).flatten(1).mean(1),
        }
        rec = sum(out[name] for name in rec_parts(cfg)) / len(rec_parts(cfg))
        out["score"] = cfg.score_lambda * rec + (1 - cfg.score_lambda) * out["lat"]
        if maps:
            out["map"] = anomaly_map
        return out


def reconstruct(
    cfg: ModelConfig, generator: nn.Module, discriminator: nn.Module, x: torch.Tensor, seed: int = 0
) -> torch.Tensor:
    """Eval-mode reconstructions of float images x (B, 3, H, W) in [-1, 1]: G(x) for the skip models and GANomaly,
    G(z*) of the latent search (from the same z0 as `score_images`) for AnoGAN."""
    generator.eval()
    discriminator.eval()
    if cfg.model == "anogan":
        z0 = torch.randn(1, cfg.nz, 1, 1, generator=torch.Generator().manual_seed(seed)).to(x.device)
        return latent_search(generator, discriminator, x, cfg.anogan_steps, cfg.anogan_lambda, z0, reconstruct=True)[1]
    with torch.inference_mode():
        x_hat = generator(x)
    return x_hat[0] if isinstance(x_hat, tuple) else x_hat  # ganomaly's generator also returns its latents


def combine_parts(cfg: ModelConfig, scores: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> None:
    """Recompute `scores["score"]` of a skip model (in place) from its parts under `cfg.score_normalize`.

    `val_mean`: each part (the reconstruction error as `cfg.score_reduce` reduces it, and the latent error) is divided
    by its mean over `reference`, the validation split's normal images, so lambda mixes two errors of comparable size;
    under `mean_max` the reconstruction term is the average of the mean's and the maximum's scaled errors. With `none`
    the raw mix of `score_images` stands. Models without parts (ganomaly, anogan) are left as they are.
    """
    if cfg.score_normalize == "none" or "rec" not in scores:
        return
    names = (*rec_parts(cfg), "lat")
    scale = {name: float(np.mean(reference[name])) if len(reference[name]) else 1.0 for name in names}
    scale = {name: value if value > 0 and np.isfinite(value) else 1.0 for name, value in scale.items()}
    rec = sum(scores[name] / scale[name] for name in rec_parts(cfg)) / len(rec_parts(cfg))
    scores["score"] = cfg.score_lambda * rec + (1 - cfg.score_lambda) * scores["lat"] / scale["lat"]


def rec_parts(cfg: ModelConfig) -> tuple[str, ...]:
    """The reconstruction parts a skip model's score uses: `rec` (the mean), `rec_max`, or both (`mean_max`)."""
    return {"mean": ("rec",), "max": ("rec_max",), "mean_max": ("rec", "rec_max")}[cfg.score_reduce]


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float32 in [-1, 1], the generators' tanh range."""
    return images.float().div_(127.5).sub_(1.0)
