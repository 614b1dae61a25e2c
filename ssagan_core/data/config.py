"""The `DataConfig`: which images a study trains and tests on, and how they are prepared (the study file's
`dataset:` section). Validated on construction; a bad value names its key."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..config import _check, _choice, is_integer, is_number, is_power_of_two
from .cache import RESIZE_RULES
from .layouts import DatasetError

KINDS = ("synthetic", "mvtec", "kolektor", "folder", "elpv")


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are prepared. The study file's `dataset:` section."""

    kind: str = "synthetic"
    """`synthetic` (embedded, generated), `mvtec`, `kolektor`, `folder` or `elpv`."""
    root: str | None = None
    """Dataset root folder (`~` and `${VARS}` are expanded); required for mvtec, kolektor and folder; elpv: a copy of
    the elpv-dataset repository's data (labels.csv, images/) instead of the installed package's."""
    categories: tuple[str, ...] = ("all",)
    """Categories to use; `all` = every category the dataset has (or, on disk, every one found under the root)."""
    image_size: int = 64
    """Side of the square model input in pixels."""
    resize: str = "stretch"
    """How a non-square image becomes square: `stretch` (resized to the square, aspect ratio lost, nothing cut or
    padded) or `pad` (aspect ratio kept, the short side padded with the image's edge pixels). Square images (MVTec,
    ELPV) are unaffected."""
    cache_dir: str | None = None
    """Where decoded images are cached (`~`, `${VARS}` expanded); None: `$SSAGAN_CACHE_DIR` or
    `~/.cache/ssagan-ablate`."""
    val_fraction: float = 0.1
    """Share of the normal training images held out as the validation split (see `val_min_images`)."""
    val_min_images: int = 20
    """Fewest normal images the validation split holds, so that its threshold and `val_auc` do not rest on a handful
    of images: it takes the larger of `val_fraction` x the normal training images and `val_min_images`, but this
    minimum never takes more than half of them (a category with 30 normals trains on 15 and validates on 15; one
    with 400 validates on 40). 0: `val_fraction` alone. Kolektor holds out whole commutators, so it can take a few
    more. The trial row's `n_val_normal` says how many it got."""
    split_seed: int = 0
    """Seed of the train/validation split, of kolektor's and elpv's train/test split of the good images, and of the
    synthetic dataset's images."""
    n_train: int = 200
    """synthetic: normal training images per category (before the validation split)."""
    n_test_good: int = 40
    """synthetic: normal test images per category."""
    n_test_defective: int = 60
    """synthetic: defective test images per category."""

    def __post_init__(self) -> None:
        _choice("dataset.kind", self.kind, KINDS)
        _choice("dataset.resize", self.resize, RESIZE_RULES)
        _check("dataset.cache_dir", self.cache_dir is None or isinstance(self.cache_dir, str), "a path", self.cache_dir)
        _check(
            "dataset.image_size",
            is_power_of_two(self.image_size) and self.image_size >= 16,
            "a power of two >= 16",
            self.image_size,
        )
        _check(
            "dataset.val_fraction",
            is_number(self.val_fraction) and 0 < self.val_fraction < 1,
            "a number in (0, 1)",
            self.val_fraction,
        )
        for name in ("val_min_images", "split_seed", "n_train", "n_test_good", "n_test_defective"):
            value = getattr(self, name)
            _check(
                f"dataset.{name}",
                is_integer(value) and value >= (1 if name == "n_train" else 0),
                "an integer >= 1" if name == "n_train" else "an integer >= 0",
                value,
            )
        categories = (self.categories,) if isinstance(self.categories, str) else tuple(self.categories)
        _check(
            "dataset.categories",
            len(categories) > 0 and all(isinstance(c, str) and c for c in categories),
            "a non-empty list of category names",
            self.categories,
        )
        object.__setattr__(self, "categories", categories)
        if self.kind in ("mvtec", "kolektor", "folder") and not self.root:
            raise DatasetError(f"dataset.root: required for dataset kind {self.kind!r}")

    def to_dict(self) -> dict:
        return asdict(self)
