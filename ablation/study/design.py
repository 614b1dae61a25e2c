"""A study's design -> its variants -> its trials (variant x seed x category), each with a stable, readable key.

The key identifies a grid point across runs and resumes (Ray's trial ids do not: a resumed run gives the same point a
new id), so results are keyed, de-duplicated and checked for completeness by it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from ssagan_core.config import ModelConfig, TrainConfig
from ssagan_core.presets import PRESETS

from .schema import Study, column, format_value, trial_key


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
        combinations = itertools.product(*study.grid.values())
        return [variant_with(study, dict(zip(keys, values, strict=True))) for values in combinations]
    if study.loco:
        return [variant_with(study, {}), *(variant_with(study, {k: v}) for k, v in study.loco.items())]
    return [variant_with(study, {})]


def trial_specs(study: Study, categories: tuple[str, ...]) -> list[TrialSpec]:
    """Every trial of a grid or LOCO study: variants x seeds x categories, in that order."""
    return [
        spec_for(study, variant, seed, category)
        for variant, seed, category in itertools.product(variants(study), study.seeds, categories)
    ]


def spec_for(study: Study, variant: Variant, seed: int, category: str, name: str | None = None) -> TrialSpec:
    """The trial of `variant` at `seed` on `category`; `name` replaces the variant's name in the key (search trials
    are keyed by their sampling order, `search#NNNN`)."""
    return TrialSpec(
        key=trial_key(name or variant.name, seed, category),
        variant=variant.name,
        factors=variant.factors,
        seed=seed,
        category=category,
        model=model_config(variant.model, study.image_size),
        train=TrainConfig(**variant.train),
    )


def variant_with(study: Study, factors: dict[str, Any]) -> Variant:
    """The base settings with `factors` applied. A variant that switches `model.model` to a baseline drops the base
    `model:` settings that the baseline's network fixes (they describe the paper's model), while the same keys set
    by the variant's own factors stay errors."""
    model, train = dict(study.model), dict(study.train)
    preset = PRESETS.get(factors.get("model.model"))  # None when the variant keeps the base's model
    for key in preset.fixes if preset else ():
        model.pop(key, None)
    for key, value in factors.items():
        section, name = key.split(".", 1)
        (model if section == "model" else train)[name] = value
    name = ",".join(f"{column(k)}={format_value(v)}" for k, v in factors.items()) or "base"
    return Variant(name, dict(factors), model, train)


def model_config(model: dict[str, Any], image_size: int) -> ModelConfig:
    """The `ModelConfig` of study-file model settings (YAML lists become the config's tuples)."""
    return ModelConfig(image_size=image_size, **{k: tuple(v) if isinstance(v, list) else v for k, v in model.items()})
