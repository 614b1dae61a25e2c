"""Groups of images that must stay on one side of every split: the surfaces of one physical part (a KolektorSDD
commutator, `kosNN`) look alike, so a part seen in training and tested again would leak. An image without a group
is a group of its own, which leaves the per-image splits of the other datasets exactly as they were."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def group_index(keys: Sequence[str | None] | None, n: int) -> np.ndarray:
    """Each image's group as an int, numbered by first appearance; a None key (or `keys` None) is a group of its own.
    With no keys this is `arange(n)`, so a draw over groups is the same draw as over images."""
    if keys is None:
        return np.arange(n)
    if len(keys) != n:
        raise ValueError(f"groups: expected {n} entries, got {len(keys)}")
    ids: dict[object, int] = {}
    return np.array([ids.setdefault((None, i) if k is None else k, len(ids)) for i, k in enumerate(keys)], np.int64)


def shuffled_groups(group_of: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """The members (indices) of each group of `group_of` (`group_index` numbering), the groups in the order of one
    `rng.permutation` over them."""
    n_groups = int(group_of.max()) + 1 if len(group_of) else 0
    members: list[list[int]] = [[] for _ in range(n_groups)]
    for i, g in enumerate(group_of.tolist()):
        members[g].append(i)
    return [np.array(members[g], np.int64) for g in rng.permutation(n_groups)]
