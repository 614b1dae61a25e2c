"""The validation split: normal images held out from training, plus synthetic defects painted onto copies of them.

Thresholds and any model selection (HPO on `val_auc`) use this split, never the test set. Its defects are generic
(cut-and-paste patches and smooth intensity blobs, in the spirit of CutPaste, Li et al. 2021, and the synthetic
validation mode of anomalib), so `val_auc` is a label-free proxy that is computed the same way on every dataset.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .groups import group_index, shuffled_groups
from .images import GOOD, ImageSet

VAL_DEFECTS = ("cutpaste", "blob")


def val_size(n: int, val_fraction: float, val_min_images: int = 0) -> int:
    """How many of `n` normal training images the validation split holds: `val_fraction` of them, or
    `val_min_images` if more but then at most half of them (`n // 2`); at least one, and one stays for training.
    `val_fraction` 0 holds out none."""
    if n < 2 or val_fraction == 0:
        return 0
    # The minimum is capped at half so that it never takes most of a small category's training images; the fraction
    # alone is not capped, as before: a study that asks for 0.6 gets 0.6.
    return min(max(1, round(n * val_fraction), min(val_min_images, n // 2)), n - 1)


def split_train_val(
    train: ImageSet,
    val_fraction: float,
    seed: int,
    val_min_images: int = 0,
    groups: Sequence[str | None] | None = None,
) -> tuple[ImageSet, ImageSet]:
    """Hold out `val_size` of the normal training images. With `groups` (one key per image, None = a group of its
    own) the images of one group are held out together: whole groups are drawn until at least `val_size` images
    are held out, never the last group left for training. With a single group that is impossible, and the split is
    per image."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction: must be in [0, 1), got {val_fraction}")
    n = len(train)
    n_val = val_size(n, val_fraction, val_min_images)
    group_of = group_index(groups, n)
    if len(np.unique(group_of)) < 2:
        group_of = np.arange(n)
    held: list[int] = []
    # Without groups this is the permutation of the images that the split has always drawn: the same split.
    for members in shuffled_groups(group_of, np.random.default_rng(seed)):
        if len(held) >= n_val:
            break
        if len(held) + len(members) < n:
            held.extend(members.tolist())
    is_val = np.zeros(n, bool)
    is_val[held] = True
    return train.subset(np.flatnonzero(~is_val)), train.subset(np.flatnonzero(is_val))


def make_val_anomalies(normals: ImageSet, seed: int) -> ImageSet:
    """A defective copy of each normal image: a cut-paste patch or a smooth blob, with its mask."""
    rng = np.random.default_rng(seed)
    images = normals.images.copy()
    n, _, h, w = images.shape
    masks = np.zeros((n, h, w), np.uint8)
    defects = []
    for i in range(n):
        kind = VAL_DEFECTS[i % len(VAL_DEFECTS)]
        if kind == "cutpaste":
            _cut_paste(images[i], masks[i], rng)
        else:
            _blob(images[i], masks[i], rng)
        defects.append(kind)
    return ImageSet(
        images=images,
        labels=np.ones(n, np.int64),
        defects=tuple(defects),
        paths=tuple(f"{p}#val-{d}" for p, d in zip(normals.paths, defects, strict=True)),
        masks=masks,
    )


def make_validation(
    train: ImageSet,
    val_fraction: float,
    seed: int,
    val_min_images: int = 0,
    groups: Sequence[str | None] | None = None,
) -> tuple[ImageSet, ImageSet]:
    """Split `train` into (train, val) where val = held-out normals (`split_train_val`) + their synthetic-defect
    copies."""
    train, normals = split_train_val(train, val_fraction, seed, val_min_images, groups)
    if len(normals) == 0:
        return train, normals
    normals = ImageSet(
        images=normals.images,
        labels=np.zeros(len(normals), np.int64),
        defects=(GOOD,) * len(normals),
        paths=normals.paths,
        masks=np.zeros((len(normals), *normals.images.shape[2:]), np.uint8),
    )
    anomalies = make_val_anomalies(normals, seed + 1)
    return train, _concat(normals, anomalies)


def _concat(a: ImageSet, b: ImageSet) -> ImageSet:
    return ImageSet(
        images=np.concatenate([a.images, b.images]),
        labels=np.concatenate([a.labels, b.labels]),
        defects=a.defects + b.defects,
        paths=a.paths + b.paths,
        masks=np.concatenate([a.masks, b.masks]),
    )


def _cut_paste(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> None:
    """Copy a rectangle of the image elsewhere, with a brightness change (CutPaste's patch with colour jitter)."""
    _, h, w = image.shape
    ph = max(2, int(h * rng.uniform(0.08, 0.2)))
    pw = max(2, int(w * rng.uniform(0.08, 0.2)))
    sy, sx = rng.integers(0, h - ph + 1), rng.integers(0, w - pw + 1)
    dy, dx = rng.integers(0, h - ph + 1), rng.integers(0, w - pw + 1)
    patch = image[:, sy : sy + ph, sx : sx + pw].astype(np.float32)
    patch = np.rot90(patch, k=int(rng.integers(1, 4)), axes=(1, 2))
    if patch.shape[1:] != (ph, pw):  # a quarter turn swaps the sides; keep the rectangle's own shape
        patch = patch.transpose(0, 2, 1)
    patch = patch * rng.uniform(0.6, 1.4) + rng.uniform(-30, 30, size=(3, 1, 1))
    image[:, dy : dy + ph, dx : dx + pw] = np.clip(patch, 0, 255).astype(np.uint8)
    mask[dy : dy + ph, dx : dx + pw] = 1


def _blob(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> None:
    """Darken or brighten an irregular, soft-edged region (a stain-like intensity anomaly)."""
    _, h, w = image.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
    r = rng.uniform(0.06, 0.14) * min(h, w)
    angle = np.arctan2(yy - cy, xx - cx)
    wobble = 1 + 0.25 * np.sin(3 * angle + rng.uniform(0, 2 * np.pi)) + 0.15 * np.sin(5 * angle)
    dist = np.hypot(yy - cy, xx - cx) / (r * wobble)
    alpha = np.clip(1.5 - dist, 0, 1)  # soft edge
    shift = rng.choice([-1.0, 1.0]) * rng.uniform(50, 90)
    tint = shift * rng.uniform(0.7, 1.0, size=(3, 1, 1))
    out = image.astype(np.float32) + alpha[None] * tint
    image[:] = np.clip(out, 0, 255).astype(np.uint8)
    mask[alpha > 0.5] = 1
