"""`load_category`: a `DataConfig` and a category name -> the category's arrays, split for training.

Every dataset kind yields the same `CategoryData`: normal train images, a validation split carved from them with a
fixed seed (normal images plus synthetic defects, see validation.py), and the labelled test set with defect kinds,
masks where the dataset has them, and each test image's source path. Datasets on disk are listed by layouts.py
and decoded once by cache.py (cached under `cache_dir`); their protocols:
- mvtec: train = `train/good`; test = `test/*` as laid out.
- folder: train = `train/0.normal`; test = `test/0.normal` and `test/1.abnormal`.
- kolektor: an image is defective iff its mask has a non-zero pixel. The usual protocol (anomalib's) tests every
  defective image and splits the good ones 80/20 per image; here every split keeps the surfaces of one commutator
  (`kosNN`) together, see `_test_split`.
- elpv: good = defect probability 0, split 80/20 into train / test by `split_seed`; test defects = probability 2/3
  and 1; the 1/3 cells are not used.
The validation split keeps a layout's groups together as well (validation.py).
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import numpy as np

from . import cache, layouts
from .config import DataConfig
from .groups import group_index, shuffled_groups
from .images import GOOD, CategoryData, ImageSet
from .layouts import DatasetError, Layout
from .synthetic import SYNTHETIC_CATEGORIES, make_synthetic_category
from .validation import make_validation

GOOD_TEST_FRACTION = 0.2  # kolektor, elpv: share of the good images held out as normal test images
MIN_TRAIN_SHARE = 0.5  # groups with a defect never take more than this share of the good images out of training


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
        category,
        cfg.image_size,
        cfg.split_seed,
        cfg.n_train,
        cfg.n_test_good,
        cfg.n_test_defective,
        cfg.val_fraction,
        cfg.val_min_images,
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
    is_test, is_train = _test_split(layout, labels, cfg.split_seed)
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
    train_index = np.flatnonzero(is_train)
    train = _rows(everything, train_index)
    groups = [layout.sources[i].group for i in train_index]
    train, val = make_validation(train, cfg.val_fraction, cfg.split_seed, cfg.val_min_images, groups)  # copies
    return CategoryData(dataset=cfg.kind, category=category, train=train, val=val, test=test)


def _test_split(layout: Layout, labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(is_test, is_train) per source. Fixed splits are as the layout says; the pool (kolektor, elpv) is split by
    group (`Source.group`, one commutator; an image without one is a group of its own), whole groups to one side:
    1. A group with a defective image goes to test whole, its good images as test normals: they must not train,
       since testing its defect on a model trained on the same part's other surfaces would leak, and a defect is
       never a training image. But these groups never take more than MIN_TRAIN_SHARE of the good images out of
       training: KolektorSDD v1 has a defect on every one of its 50 commutators (Tabernik et al. 2019, its paper),
       so testing them all would leave nothing to train on. The groups that do not fit (drawn by seed) stay on the
       training side with their good images, and their defective images are left out of every split.
    2. Groups without a defect are drawn by seed into test until it holds GOOD_TEST_FRACTION of the good images;
       one stays for training.
    Without groups (elpv) step 1 tests every defective image and step 2 is the per-image draw it always was."""
    split = np.array([s.split for s in layout.sources])
    is_test, is_train = split == "test", split == "train"
    pool = np.flatnonzero(split == layouts.POOL)
    good = labels[pool] == 0
    n_good = int(good.sum())
    if n_good == 1:
        raise DatasetError(f"{layout.root}: needs at least 2 good images (one to train on, one to test)")
    keys = [layout.sources[i].group for i in pool]
    group_of = group_index(keys, len(pool))
    with_defect = np.isin(group_of, group_of[~good])
    test, train = np.zeros(len(pool), bool), good.copy()  # over the pool; a defective image never trains
    n_train = n_good  # good images on the training side
    # Streams of their own, so the test split and make_validation's train/val split do not share draws; the groups
    # without a defect use the stream (seed, 1) of the per-image split, which therefore draws as it did.
    for members in _draw_groups(keys, np.flatnonzero(with_defect), np.random.default_rng((seed, 2))):
        n = int(good[members].sum())
        if n_train - n >= MIN_TRAIN_SHARE * n_good:
            test[members], train[members] = True, False
            n_train -= n
    n_test = min(max(1, round(n_good * GOOD_TEST_FRACTION)), n_good - 1)
    for members in _draw_groups(keys, np.flatnonzero(~with_defect), np.random.default_rng((seed, 1))):
        if n_good - n_train >= n_test:
            break
        if n_train > len(members):
            test[members], train[members] = True, False
            n_train -= len(members)
    is_test[pool[test]] = True
    is_train[pool[train]] = True
    return is_test, is_train


def _draw_groups(keys: list[str | None], subset: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """The groups of the images at `subset` (indices into `keys`), in a random order, as arrays of those indices."""
    return [subset[m] for m in shuffled_groups(group_index([keys[i] for i in subset], len(subset)), rng)]


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
