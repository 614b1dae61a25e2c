"""The data a trial trains and tests on: one category of one dataset as arrays, split for training.

- `images`: `ImageSet` and `CategoryData`, the containers every dataset kind produces and training consumes.
- `config`: `DataConfig`, the study file's `dataset:` section.
- `load`: `resolve_categories` and `load_category` (the per-kind protocols and the train/test split).
- `layouts`: which files make up a category of MVTec AD, KolektorSDD, ELPV or a plain folder dataset.
- `cache`: decode once: a layout's images resized and kept on disk as memory-mappable arrays.
- `groups`: images that stay on one side of every split (the surfaces of one KolektorSDD commutator).
- `validation`: the validation split (held-out normal images plus synthetic defects painted on copies of them).
- `synthetic`: the embedded procedurally rendered dataset, the default (its `scenes` and `defects` in their own
  modules).

Numpy and Pillow only (no torch): images become float tensors one batch at a time in training and scoring.
"""

from .config import KINDS, DataConfig
from .images import GOOD, CategoryData, ImageSet
from .layouts import DatasetError
from .load import load_category, resolve_categories
from .synthetic import SYNTHETIC_CATEGORIES, SYNTHETIC_DEFECTS, make_synthetic_category, write_mvtec_tree

__all__ = [
    "GOOD",
    "KINDS",
    "SYNTHETIC_CATEGORIES",
    "SYNTHETIC_DEFECTS",
    "CategoryData",
    "DataConfig",
    "DatasetError",
    "ImageSet",
    "load_category",
    "make_synthetic_category",
    "resolve_categories",
    "write_mvtec_tree",
]
