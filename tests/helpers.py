"""Small data builders shared by the tests."""

from __future__ import annotations

import itertools

import numpy as np

from ssagan_core.data import GOOD, CategoryData, ImageSet

# Test-only widths: the real networks, a few channels wide.
TINY = {"base_channels": 4, "max_channels": 16, "ndf": 4, "nz": 8}

# The 16 combinations of the four switches.
SWITCHES = [
    {"attention": a, "conv": c, "down": d, "up": u}
    for a, c, d, u in itertools.product(
        (True, False), ("dsc", "standard"), ("maxpool", "strided"), ("bilinear", "transposed")
    )
]


def switch_id(s: dict) -> str:
    return "-".join(["attn" if s["attention"] else "noattn", s["conv"], s["down"], s["up"]])


def random_set(n_good: int, n_bad: int, size: int, seed: int) -> ImageSet:
    """Random-noise images; the "defective" ones carry a bright square."""
    rng = np.random.default_rng(seed)
    n = n_good + n_bad
    images = rng.integers(0, 120, (n, 3, size, size), dtype=np.uint8)
    masks = np.zeros((n, size, size), np.uint8)
    s = max(2, size // 4)
    images[n_good:, :, :s, :s] = 255
    masks[n_good:, :s, :s] = 1
    return ImageSet(
        images=images,
        labels=np.array([0] * n_good + [1] * n_bad, np.int64),
        defects=(GOOD,) * n_good + ("square",) * n_bad,
        paths=tuple(f"random/{seed}/{i}" for i in range(n)),
        masks=masks,
    )


def random_category(size: int, n_train: int = 8, n_test: int = 4, seed: int = 0) -> CategoryData:
    return CategoryData(
        dataset="random",
        category="noise",
        train=random_set(n_train, 0, size, seed),
        val=random_set(2, 2, size, seed + 1),
        test=random_set(n_test, n_test, size, seed + 2),
    )
