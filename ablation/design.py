"""A study's design -> its variants -> its trials (variant x seed x category), each with a stable, readable key.

The key identifies a grid point across runs and resumes (Ray's trial ids do not: a resumed run gives the same point a
new id), so results are keyed, de-duplicated and checked for completeness by it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from ssagan_core import ModelConfig, TrainConfig

from .study import Study, model_config


@dataclass(frozen=True)
class Variant:
    name: str  # readable factor values, e.g. "attention=false,conv=standard"; "base" when nothing is varied
    factors: dict[str, Any]  # factor key -> value, e.g. {"model.attention": False}
    model: dict[str, Any]  # study-file model settings of this variant
    train: dict[str, Any]


@dataclass(frozen=True)
class TrialSpec:
    key: str  # "<variant>|seed=<s>|<category>"
    variant: str
    factors: dict[str, Any]
    seed: int
    category: str
    model: ModelConfig
    train: TrainConfig


def variants(study: Study) -> list[Variant]:
    """Grid: the full cross product of the factors. LOCO: the base, then each listed component set to its "off"
    value alone (n + 1 variants). Search studies have one base variant; their points come from the searcher."""
    if study.grid:
        keys = list(study.grid)
        return [
            _variant(study, dict(zip(keys, values, strict=True))) for values in itertools.product(*study.grid.values())
        ]
    if study.loco:
        return [_variant(study, {}), *(_variant(study, {k: v}) for k, v in study.loco.items())]
    return [_variant(study, {})]


def trial_specs(study: Study, categories: tuple[str, ...]) -> list[TrialSpec]:
    """Every trial of a grid or LOCO study: variants x seeds x categories, in that order."""
    out = []
    for variant, seed, category in itertools.product(variants(study), study.seeds, categories):
        out.append(spec_for(study, variant, seed, category))
    return out


def spec_for(study: Study, variant: Variant, seed: int, category: str) -> TrialSpec:
    return TrialSpec(
        key=f"{variant.name}|seed={seed}|{category}",
        variant=variant.name,
        factors=variant.factors,
        seed=seed,
        category=category,
        model=model_config(variant.model, study.dataset.image_size),
        train=TrainConfig(**variant.train),
    )


def variant_with(study: Study, factors: dict[str, Any]) -> Variant:
    """The base settings with `factors` applied (a searcher's suggestion)."""
    return _variant(study, factors)


# Base `model:` settings that a baseline preset fixes itself: a variant that switches `model.name` to a baseline
# drops them (they describe the paper's model), while the same keys set by the variant's own factors stay errors.
_FIXED_BY_PRESET = {
    "skip_ganomaly": ("attention", "conv", "down", "up"),
    "ganomaly": ("attention", "conv", "down", "up"),
    "anogan": ("attention", "conv", "down", "up", "w_ctx", "w_lat"),
}


def _variant(study: Study, factors: dict[str, Any]) -> Variant:
    model, train = dict(study.model), dict(study.train)
    preset = factors.get("model.name", model.get("name", "ssagan"))
    if "model.name" in factors:
        for key in _FIXED_BY_PRESET.get(preset, ()):
            model.pop(key, None)
    for key, value in factors.items():
        section, name = key.split(".", 1)
        (model if section == "model" else train)[name] = value
    name = ",".join(f"{column(k)}={_fmt(v)}" for k, v in factors.items()) or "base"
    return Variant(name, dict(factors), model, train)


def column(factor: str) -> str:
    """The trials.parquet column of a factor: `model.attention` -> `attention`, `model.name` -> `model`."""
    name = factor.split(".", 1)[1]
    return "model" if factor == "model.name" else name


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_fmt(v) for v in value) + "]"
    return str(value)
