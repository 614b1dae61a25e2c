"""Tiny study files for the runner tests: the real runner on the embedded dataset, seconds per trial."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

TINY_STUDY = {
    "name": "tiny",
    "description": "runner test",
    "dataset": {
        "kind": "synthetic",
        "categories": ["nut"],
        "image_size": 32,
        "n_train": 24,
        "n_test_good": 4,
        "n_test_defective": 4,
    },
    "model": {"base_channels": 4, "max_channels": 16, "ndf": 4, "nz": 8},
    "train": {"iterations": 4, "batch_size": 4, "log_every": 2},
    "seeds": [0, 1],
    "grid": {"model.attention": [True, False]},
    "resources": {"cpus_per_trial": 1, "retries": 0},
}


def write_study(path: Path, **changes) -> Path:
    """TINY_STUDY with top-level sections replaced or (for dicts given as `section__key`) updated."""
    study = copy.deepcopy(TINY_STUDY)
    for key, value in changes.items():
        if "__" in key:
            section, name = key.split("__", 1)
            study.setdefault(section, {})[name] = value
        elif value is None:
            study.pop(key, None)
        else:
            study[key] = value
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path
