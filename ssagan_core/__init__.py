"""ssagan_core: the Skip-Self-Attention GAN (Sun et al. 2025), its baselines, training, scoring, metrics and data.

The model library of ssagan-ablate. It depends on torch, numpy, Pillow and scikit-learn only; orchestration (Ray,
Optuna, Parquet, YAML) lives in `ablation`.

Modules, in the order a trial uses them: `presets` (the model presets as one table) and `config` (the frozen
configs), `data` (datasets -> arrays), `blocks` (one factory per switch) and the networks (`ssagan`,
`skip_ganomaly`, `ganomaly`, `anogan`, `dcgan`, built by `factory`), `losses`, `training`, `scoring`, `metrics`.

The names below are imported on first use (PEP 562), so that `ssagan_core.presets`, `ssagan_core.config` and
`ssagan_core.data` can be read without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MODELS": "presets",
    "PRESETS": "presets",
    "SWITCHES": "presets",
    "CONVS": "config",
    "DOWNS": "config",
    "UPS": "config",
    "ModelConfig": "config",
    "TrainConfig": "config",
    "CategoryData": "data",
    "DataConfig": "data",
    "DatasetError": "data",
    "ImageSet": "data",
    "SYNTHETIC_CATEGORIES": "data",
    "SYNTHETIC_DEFECTS": "data",
    "load_category": "data",
    "make_synthetic_category": "data",
    "resolve_categories": "data",
    "SelfAttention2d": "blocks",
    "make_attention": "blocks",
    "make_conv": "blocks",
    "make_downsample": "blocks",
    "make_upsample": "blocks",
    "build_discriminator": "factory",
    "build_generator": "factory",
    "count_parameters": "factory",
    "compute_metrics": "metrics",
    "score_images": "scoring",
    "Progress": "training",
    "TrainResult": "training",
    "train": "training",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ssagan_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
