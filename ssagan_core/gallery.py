"""A trial's gallery: one small PNG of where the model looks, with the same images for every variant of a study.

Rows, top to bottom: `FIXED` test images chosen from the dataset and the seed alone (defective ones first, then one
normal; `fixed_images`), so every variant trained with that seed shows the same ones; then the trial's three
highest-scoring normal images (false alarms) and its three lowest-scoring defective ones (misses). Columns: the input,
the reconstruction, the anomaly map over the input (a heat overlay, each map scaled by the largest map value of the
gallery so that rows compare), and the mask. A label strip on the left names each row's kind.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from .config import ModelConfig
from .data import ImageSet
from .scoring import reconstruct, to_float

FIXED = 4  # fixed images: 3 defective (where the test set has them) and 1 normal
WORST = 3  # false alarms and misses each
LABEL_WIDTH = 56


def trial_gallery(
    cfg: ModelConfig,
    generator: nn.Module,
    discriminator: nn.Module,
    test: ImageSet,
    scores: np.ndarray,
    maps: np.ndarray,
    seed: int,
    device: torch.device,
) -> bytes:
    """A trained model's gallery PNG: the fixed images of `test` for `seed`, then its false alarms and misses by
    `scores`, each with its eval-mode reconstruction (`scoring.reconstruct`) and its map from `maps`."""
    fixed = fixed_images(test.labels, seed)
    chosen = [(i, "defect" if test.labels[i] else "normal") for i in fixed] + worst_images(test.labels, scores, fixed)
    index = [i for i, _ in chosen]
    x_hat = reconstruct(cfg, generator, discriminator, to_float(torch.from_numpy(test.images[index]).to(device)), seed)
    recon = ((x_hat.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    masks = None if test.masks is None else test.masks[index]
    return render(test.images[index], recon, maps[index], masks, [kind for _, kind in chosen])


def fixed_images(labels: np.ndarray, seed: int, fixed: int = FIXED) -> list[int]:
    """Indices of the fixed test images: from the labels and the seed only (never a model's scores)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x6A11]))
    labels = np.asarray(labels)
    defective, normal = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    picked = list(rng.choice(defective, size=min(fixed - 1, len(defective)), replace=False)) if len(defective) else []
    if len(normal):
        picked.append(int(rng.choice(normal)))
    return [int(i) for i in picked]


def worst_images(
    labels: np.ndarray, scores: np.ndarray, exclude: list[int], worst: int = WORST
) -> list[tuple[int, str]]:
    """(index, kind) of the highest-scoring normal images ("false alarm") and the lowest-scoring defective ones
    ("miss"), leaving out `exclude` (already shown)."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    out = []
    for label, kind, sign in ((0, "false alarm", -1.0), (1, "miss", 1.0)):
        candidates = [i for i in np.flatnonzero(labels == label) if i not in exclude and np.isfinite(scores[i])]
        candidates.sort(key=lambda i: (sign * scores[i], i))
        out += [(int(i), kind) for i in candidates[:worst]]
    return out


def render(
    images: np.ndarray, recon: np.ndarray, maps: np.ndarray, masks: np.ndarray | None, kinds: list[str]
) -> bytes:
    """PNG bytes of the gallery: uint8 images and reconstructions (K, 3, H, W), maps (K, H, W), masks (K, H, W) or
    None, and each row's label."""
    k, _, h, w = images.shape
    scale = max(1, 64 // h)  # small images drawn at least 64 px
    top = float(np.max(maps)) if maps.size and np.max(maps) > 0 else 1.0
    rows = []
    for i in range(k):
        x = images[i].transpose(1, 2, 0)
        heat = _heat(np.clip(maps[i] / top, 0, 1))
        overlay = (0.5 * x + 0.5 * heat).astype(np.uint8)
        mask = np.zeros((h, w, 3), np.uint8) if masks is None else np.repeat(masks[i, :, :, None] * 255, 3, axis=2)
        cells = [x, recon[i].transpose(1, 2, 0), overlay, mask.astype(np.uint8)]
        rows.append(np.concatenate([np.pad(c, ((1, 1), (1, 1), (0, 0)), constant_values=255) for c in cells], axis=1))
    grid = np.concatenate(rows, axis=0)
    picture = Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST)
    canvas = Image.new("RGB", (picture.width + LABEL_WIDTH, picture.height), "white")
    canvas.paste(picture, (LABEL_WIDTH, 0))
    draw = ImageDraw.Draw(canvas)
    row_h = (h + 2) * scale
    for i, kind in enumerate(kinds):
        draw.text((3, i * row_h + row_h // 2 - 5), kind, fill="black")
    buffer = io.BytesIO()
    canvas.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _heat(values: np.ndarray) -> np.ndarray:
    """A blue-to-red ramp of values in [0, 1] -> (H, W, 3) floats in [0, 255]."""
    r = np.clip(1.5 * values, 0, 1)
    g = np.clip(1.5 - np.abs(2 * values - 1) * 1.5, 0, 1) * 0.8
    b = np.clip(1.5 * (1 - values), 0, 1)
    return np.stack([r, g, b], axis=-1) * 255
