"""In-memory image sets: what every dataset loader produces and what training consumes.

Images are kept as uint8 arrays (N, 3, H, W) so that a whole category fits on the training device; they become
floats in [-1, 1] one batch at a time (`ssagan_core.scoring.to_float`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GOOD = "good"


@dataclass(frozen=True)
class ImageSet:
    """A set of images with their labels (0 good, 1 defective), defect kinds, masks and source paths."""

    images: np.ndarray  # (N, 3, H, W) uint8
    labels: np.ndarray  # (N,) int64, 1 = defective
    defects: tuple[str, ...]  # "good" or the defect kind, per image
    paths: tuple[str, ...]  # where each image came from (a file path, or a synthetic id)
    masks: np.ndarray | None = None  # (N, H, W) uint8, 1 = defective pixel; None when the dataset has none

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.ndim != 4 or self.images.shape[1] != 3 or self.images.dtype != np.uint8:
            raise ValueError(
                f"images: expected a uint8 array (N, 3, H, W), got {self.images.dtype} {self.images.shape}"
            )
        if self.labels.shape != (n,):
            raise ValueError(f"labels: expected shape ({n},), got {self.labels.shape}")
        if len(self.defects) != n or len(self.paths) != n:
            raise ValueError(f"defects/paths: expected {n} entries, got {len(self.defects)}/{len(self.paths)}")
        if self.masks is not None and self.masks.shape != (n, *self.images.shape[2:]):
            raise ValueError(f"masks: expected shape {(n, *self.images.shape[2:])}, got {self.masks.shape}")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    @property
    def has_both_classes(self) -> bool:
        return bool(len(self) and 0 < int(self.labels.sum()) < len(self))

    def subset(self, index: np.ndarray) -> ImageSet:
        """The images at `index`, in that order."""
        index = np.asarray(index, dtype=np.int64)
        return ImageSet(
            images=self.images[index],
            labels=self.labels[index],
            defects=tuple(self.defects[i] for i in index),
            paths=tuple(self.paths[i] for i in index),
            masks=None if self.masks is None else self.masks[index],
        )


@dataclass(frozen=True)
class CategoryData:
    """One category of one dataset, split for training: normal train images, a validation split carved from the
    train images (used for thresholds and any model selection), and the labelled test set."""

    dataset: str
    category: str
    train: ImageSet  # normal images only
    val: ImageSet  # normal images held out from train, plus synthetic defects made from them (see validation.py)
    test: ImageSet

    def __post_init__(self) -> None:
        if len(self.train) == 0:
            raise ValueError(f"{self.dataset}/{self.category}: no training images")
        if int(self.train.labels.sum()) != 0:
            raise ValueError(f"{self.dataset}/{self.category}: training images must all be normal")
        sizes = {s.image_size for s in (self.train, self.val, self.test) if len(s)}
        if len(sizes) != 1:
            raise ValueError(f"{self.dataset}/{self.category}: splits have different image sizes {sorted(sizes)}")

    @property
    def image_size(self) -> int:
        return self.train.image_size
