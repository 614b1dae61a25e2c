"""A procedurally rendered industrial-surface anomaly dataset: the project's embedded default (MVTec AD cannot ship).

Three textures and two objects, five defect kinds (each applies to every category), pixel-exact masks. Every scene is
drawn in normalised coordinates (the image is the unit square) from seeds derived from (seed, category, split, class,
index), so it is deterministic and the same scene renders at any resolution. `write_mvtec_tree` writes the same images
in the MVTec AD folder layout, for testing and benchmarking the real-dataset loaders.

Sized for the ablation budget (32 px, a few hundred iterations on a CPU): normal scenes vary little, as under a fixed
camera with controlled light (parts in a fixture, a web running in register, small shifts and exposure changes), and
textures stay legible at 32 px; defects span 10-30% of the image side (1-5% of its area) and differ strongly in
lightness or hue from everything in view.
"""

from __future__ import annotations

import pathlib
import zlib
from collections.abc import Iterable, Iterator
from functools import lru_cache
from numbers import Integral

import numpy as np
from PIL import Image

from . import validation
from .defects import _PAINTERS
from .images import GOOD, CategoryData, ImageSet
from .scenes import _RENDERERS

SYNTHETIC_TEXTURES = ("weave", "wood", "brushed_metal")
SYNTHETIC_OBJECTS = ("nut", "capsule")
SYNTHETIC_CATEGORIES: tuple[str, ...] = SYNTHETIC_TEXTURES + SYNTHETIC_OBJECTS
SYNTHETIC_DEFECTS: tuple[str, ...] = ("scratch", "hole", "stain", "missing", "foreign")

MIN_SIZE, MAX_SIZE = 16, 4096
SUPERSAMPLE_TO = 64  # small images are rendered at >= this many pixels and block-averaged, so they do not alias
NOISE_SIGMA = 2.0 / 255  # sensor noise, per pixel and channel (2 grey levels)


# ---------------------------------------------------------------------------------------------------------------------
# Public API


def render_images(category: str, image_size: int, n_good: int, n_defective: int, seed: int, split: str) -> ImageSet:
    """Render `n_good` normal then `n_defective` defective images; defect kinds cycle through SYNTHETIC_DEFECTS."""
    _check_category(category)
    _check_size(image_size)
    _check_counts(n_good=n_good, n_defective=n_defective, seed=seed)
    if not isinstance(split, str) or not split:
        raise ValueError(f"split: expected a non-empty string such as 'train' or 'test', got {split!r}")
    images = np.zeros((n_good + n_defective, 3, image_size, image_size), np.uint8)
    masks = np.zeros((n_good + n_defective, image_size, image_size), np.uint8)
    defects = []
    for i, (defect, entropy) in enumerate(_plan(category, n_good, n_defective, seed, split)):
        images[i], masks[i] = _render_one(category, image_size, entropy, defect)
        defects.append(defect)
    return ImageSet(
        images=images,
        labels=np.array([d != GOOD for d in defects], np.int64),
        defects=tuple(defects),
        paths=tuple(f"synthetic://{category}/{split}/{i}_{d}" for i, d in enumerate(defects)),
        masks=masks,
    )


def make_synthetic_category(
    category: str,
    image_size: int = 64,
    seed: int = 0,
    n_train: int = 200,
    n_test_good: int = 40,
    n_test_defective: int = 60,
    val_fraction: float = 0.1,
    val_min_images: int = 0,
) -> CategoryData:
    """One synthetic category, split into train (normal), val (held-out normals + generic defects) and test;
    `val_fraction` and `val_min_images` as in `validation.val_size`."""
    _check_counts(n_train=n_train, n_test_good=n_test_good, n_test_defective=n_test_defective)
    if n_train < 1:
        raise ValueError(f"n_train: must be >= 1, got {n_train}")
    train = render_images(category, image_size, n_train, 0, seed, split="train")
    train, val = validation.make_validation(train, val_fraction, seed, val_min_images)
    test = render_images(category, image_size, n_test_good, n_test_defective, seed, split="test")
    return CategoryData(dataset="synthetic", category=category, train=train, val=val, test=test)


def write_mvtec_tree(
    root: str | pathlib.Path,
    categories: Iterable[str] = SYNTHETIC_CATEGORIES,
    image_size: int = 256,
    seed: int = 0,
    n_train: int = 200,
    n_test_good: int = 40,
    n_test_defective: int = 60,
) -> pathlib.Path:
    """Write the synthetic images as PNGs in the MVTec AD layout under `root` (the same scenes as
    `render_images`): <category>/train/good/000.png, <category>/test/<defect>/000.png and
    <category>/ground_truth/<defect>/000_mask.png (0/255, mode "L")."""
    categories = tuple(categories)
    for category in categories:
        _check_category(category)
    _check_size(image_size)
    _check_counts(n_train=n_train, n_test_good=n_test_good, n_test_defective=n_test_defective, seed=seed)
    root = pathlib.Path(root)
    width = max(3, len(str(max(n_train, n_test_good, n_test_defective))))
    for category in categories:
        # Rendered and written one image at a time: at MVTec's ~1024 px a whole category would not fit in memory.
        jobs = [("train", n_train, 0), ("test", n_test_good, n_test_defective)]
        for split, n_good, n_defective in jobs:
            counts: dict[str, int] = {}
            for defect, entropy in _plan(category, n_good, n_defective, seed, split):
                image, mask = _render_one(category, image_size, entropy, defect)
                k = counts[defect] = counts.get(defect, -1) + 1
                name = f"{k:0{width}d}"
                folder = root / category / split / defect
                folder.mkdir(parents=True, exist_ok=True)
                # Fast zlib level: 3x quicker to write at 1024 px than the default, and as quick to decode.
                Image.fromarray(image.transpose(1, 2, 0)).save(folder / f"{name}.png", compress_level=1)
                if defect != GOOD:
                    gt = root / category / "ground_truth" / defect
                    gt.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(mask * np.uint8(255)).save(gt / f"{name}_mask.png", compress_level=1)
    return root


# ---------------------------------------------------------------------------------------------------------------------
# Seeds, validation and the per-image pipeline


def _plan(category: str, n_good: int, n_defective: int, seed: int, split: str) -> Iterator[tuple[str, list[int]]]:
    """(defect kind, seed entropy) per image. Good and defective images are numbered separately, so asking for more
    of one class leaves the other's scenes unchanged; crc32 gives string ids that are stable across runs."""
    base = [seed, zlib.crc32(category.encode()), zlib.crc32(split.encode())]
    for j in range(n_good):
        yield GOOD, [*base, 0, j]
    for j in range(n_defective):
        yield SYNTHETIC_DEFECTS[j % len(SYNTHETIC_DEFECTS)], [*base, 1, j]


def _check_category(category: str) -> None:
    if category not in SYNTHETIC_CATEGORIES:
        raise ValueError(f"category: expected one of {', '.join(SYNTHETIC_CATEGORIES)}, got {category!r}")


def _check_size(image_size: int) -> None:
    if not isinstance(image_size, Integral) or not MIN_SIZE <= image_size <= MAX_SIZE:
        raise ValueError(f"image_size: expected an int in [{MIN_SIZE}, {MAX_SIZE}], got {image_size!r}")


def _check_counts(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, Integral) or value < 0:
            raise ValueError(f"{name}: expected a non-negative int, got {value!r}")


@lru_cache(maxsize=8)
def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates of an n x n image of the unit square, (n, n) float32 each."""
    y, x = (np.mgrid[0:n, 0:n].astype(np.float32) + 0.5) / n
    x.flags.writeable = y.flags.writeable = False
    return x, y


def _render_one(category: str, image_size: int, entropy: list[int], defect: str) -> tuple[np.ndarray, np.ndarray]:
    """One image (3, S, S) uint8 and its mask (S, S) uint8. The scene and the defect draw from separate streams, so
    `defect=GOOD` with the same entropy renders the same scene without its defect (the tests use this)."""
    scene_seq, defect_seq = np.random.SeedSequence(entropy).spawn(2)
    scene_rng, defect_rng = np.random.default_rng(scene_seq), np.random.default_rng(defect_seq)
    ss = -(-SUPERSAMPLE_TO // image_size)  # ceil: 4x at 16 px, 2x at 32 px, 1x from 64 px
    n = image_size * ss
    x, y = _grid(n)
    aa = 1.0 / n  # edges are one rendered pixel wide: anti-aliased, yet sharp at every resolution
    scene = _RENDERERS[category](x, y, scene_rng, aa)
    image, alpha = scene.image, np.zeros_like(x)
    if defect != GOOD:
        image, alpha = _PAINTERS[defect](scene, x, y, defect_rng, aa)
    image = _lighting(image, x, y, scene_rng)
    if ss > 1:
        image = image.reshape(3, image_size, ss, image_size, ss).mean(axis=(2, 4))
        alpha = alpha.reshape(image_size, ss, image_size, ss).mean(axis=(1, 3))
    image = image * 255 + scene_rng.standard_normal(image.shape, dtype=np.float32) * (NOISE_SIGMA * 255)
    image = np.clip(image + 0.5, 0, 255, out=image).astype(np.uint8)
    # The mask marks the pixels the defect covers at least half; one too thin to half cover any pixel at this size
    # (a scratch at 16-32 px) is marked where it covers most, so a defective image never has an empty mask.
    peak = float(alpha.max())
    return image, (alpha > (0.5 if peak > 0.5 else 0.5 * peak)).astype(np.uint8)


def _lighting(image: np.ndarray, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-image exposure, a gentle illumination gradient and a slight colour cast: a controlled inspection station."""
    gain = rng.uniform(0.98, 1.02)
    gx, gy = rng.uniform(-0.03, 0.03), rng.uniform(-0.03, 0.03)
    tint = 1 + rng.normal(0, 0.006, (3, 1, 1)).astype(np.float32)
    return image * (gain * (1 + gx * (x - 0.5) + gy * (y - 0.5))) * tint
