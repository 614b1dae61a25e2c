"""`load_category`: a `DataConfig` and a category name -> the category's arrays, split for training.

Every dataset kind yields the same `CategoryData`: normal train images, a validation split carved from them with a
fixed seed (normal images plus synthetic defects, see validation.py), and the labelled test set with defect kinds,
masks where the dataset has them, and each test image's source path. Datasets on disk are listed by layouts.py
and decoded once by cache.py (cached under `cache_dir`); their protocols:
- mvtec: train = `train/good`; test = `test/*` as laid out.
- folder: train = `train/0.normal`; test = `test/0.normal` and `test/1.abnormal`.
- kolektor: an image is defective iff its mask has a non-zero pixel; every defective image is a test image, and the
  good ones are split 80/20 into train / test by `split_seed` (the usual KolektorSDD protocol, as anomalib's).
- elpv: good = defect probability 0, split 80/20 into train / test by `split_seed`; test defects = probability 2/3
  and 1; the 1/3 cells are not used.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import numpy as np

from . import cache, layouts
from .config import DataConfig
from .images import GOOD, CategoryData, ImageSet
from .layouts import DatasetError, Layout
from .synthetic import SYNTHETIC_CATEGORIES, make_synthetic_category
from .validation import make_validation

GOOD_TEST_FRACTION = 0.2  # kolektor, elpv: share of the good images held out as normal test images


def resolve_categories(cfg: DataConfig) -> tuple[str, ...]:
    """The categories `cfg` names, with `all` expanded; an unknown name is a `DatasetError` listing the known ones.
    Lists folders only, so a study can check its data before any trial starts."""
    available = _CATEGORIES[cfg.kind](cfg)
    if "all" in cfg.categories:
        return available
    _check_known(cfg, cfg.categories, available)
    return tuple(dict.fromkeys(cfg.categories))


def load_category(cfg: DataConfig, category: str) -> CategoryData:
    """The arrays of one category, split into train / validation / test. Images on disk are decoded on the first
    load only (see cache.py); every bad input is a one-line `DatasetError` naming the path."""
    _check_known(cfg, (category,), _CATEGORIES[cfg.kind](cfg))
    return _LOADERS[cfg.kind](cfg, category)


def _check_known(cfg: DataConfig, names: tuple[str, ...], available: tuple[str, ...]) -> None:
    unknown = [c for c in names if c not in available]
    if unknown:
        where = f" under {_root(cfg)}" if cfg.root else ""
        raise DatasetError(
            f"dataset.categories: {', '.join(map(repr, unknown))} not found{where}; "
            f"available: {', '.join(available) or 'none'}"
        )


def _synthetic_categories(cfg: DataConfig) -> tuple[str, ...]:
    return SYNTHETIC_CATEGORIES


def _load_synthetic(cfg: DataConfig, category: str) -> CategoryData:
    return make_synthetic_category(
        category, cfg.image_size, cfg.split_seed, cfg.n_train, cfg.n_test_good, cfg.n_test_defective, cfg.val_fraction
    )


# ---------------------------------------------------------------------------------------------------------------------
# Datasets on disk


def _root(cfg: DataConfig) -> pathlib.Path:
    return layouts.elpv_root(cfg.root) if cfg.kind == "elpv" else layouts.dataset_root(cfg.root)


def _cache_dir(cfg: DataConfig) -> pathlib.Path:
    if cfg.cache_dir is None:
        return cache.default_cache_dir()
    return layouts.expand_path(cfg.cache_dir, "dataset.cache_dir")


def _disk_categories(cfg: DataConfig) -> tuple[str, ...]:
    return _LISTERS[cfg.kind](_root(cfg))


def _load_disk(cfg: DataConfig, category: str) -> CategoryData:
    """List, decode (or read from the cache) and split one category of a dataset on disk."""
    root = _root(cfg)
    layout = _READERS[cfg.kind](root, category)
    decoded = cache.load_decoded(layout, cfg.kind, category, cfg.image_size, cfg.resize, _cache_dir(cfg))
    # kolektor (defect FROM_MASK): the label is whether the full-resolution mask has a defect pixel
    defects = tuple(
        s.defect or (layouts.DEFECT if flagged else GOOD)
        for s, flagged in zip(layout.sources, decoded.flagged, strict=True)
    )
    labels = np.array([d != GOOD for d in defects], np.int64)
    is_test = _test_split(layout, labels, cfg.split_seed)
    everything = ImageSet(
        images=decoded.images,
        labels=labels,
        defects=defects,
        paths=tuple(str(root / s.image) for s in layout.sources),
        masks=decoded.masks,
    )
    test = everything.subset(np.flatnonzero(is_test))  # a copy: nothing refers to the cache's memory map afterwards
    if not test.has_both_classes:
        missing = "defective" if test.labels.sum() == 0 else "good"
        raise DatasetError(f"{root}: category {category!r} has no {missing} test images")
    train = _rows(everything, np.flatnonzero(~is_test))
    train, val = make_validation(train, cfg.val_fraction, cfg.split_seed)  # copies the train images
    return CategoryData(dataset=cfg.kind, category=category, train=train, val=val, test=test)


def _test_split(layout: Layout, labels: np.ndarray, seed: int) -> np.ndarray:
    """Which sources are test images: those the layout puts there, every defective one of the pool, and a seeded
    GOOD_TEST_FRACTION of the pool's good ones."""
    split = np.array([s.split for s in layout.sources])
    is_test = (split == "test") | ((split == layouts.POOL) & (labels == 1))
    good = np.flatnonzero((split == layouts.POOL) & (labels == 0))
    if len(good):
        if len(good) < 2:
            raise DatasetError(f"{layout.root}: needs at least 2 good images (one to train on, one to test)")
        n_test = min(max(1, round(len(good) * GOOD_TEST_FRACTION)), len(good) - 1)
        # A stream of its own, so the test split and make_validation's train/val split do not share draws.
        order = np.random.default_rng((seed, 1)).permutation(len(good))
        is_test[good[order[:n_test]]] = True
    return is_test


def _rows(images: ImageSet, index: np.ndarray) -> ImageSet:
    """The train images at `index`, without masks. A contiguous run (train images come first in the mvtec and
    folder layouts) is a view rather than a copy: make_validation copies them anyway, so this saves a whole copy."""
    if len(index) and index[-1] - index[0] + 1 == len(index):
        rows = slice(int(index[0]), int(index[-1]) + 1)
        return ImageSet(images.images[rows], images.labels[rows], images.defects[rows], images.paths[rows])
    return ImageSet(
        images.images[index],
        images.labels[index],
        tuple(images.defects[i] for i in index),
        tuple(images.paths[i] for i in index),
    )


_READERS: dict[str, Callable[[pathlib.Path, str], Layout]] = {
    "mvtec": layouts.read_mvtec,
    "kolektor": layouts.read_kolektor,
    "folder": layouts.read_folder,
    "elpv": layouts.read_elpv,
}
_LISTERS: dict[str, Callable[[pathlib.Path], tuple[str, ...]]] = {
    "mvtec": layouts.mvtec_categories,
    "kolektor": layouts.kolektor_categories,
    "folder": layouts.folder_categories,
    "elpv": layouts.elpv_categories,
}

_CATEGORIES: dict[str, Callable[[DataConfig], tuple[str, ...]]] = {
    "synthetic": _synthetic_categories,
    **dict.fromkeys(_LISTERS, _disk_categories),
}
_LOADERS: dict[str, Callable[[DataConfig, str], CategoryData]] = {
    "synthetic": _load_synthetic,
    **dict.fromkeys(_READERS, _load_disk),
}
