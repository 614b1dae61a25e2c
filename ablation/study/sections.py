"""The study file's smaller sections, each a mapping checked into its dataclass: `seeds`, `adaptive_seeds`,
`analysis`, `search` and `resources`."""

from __future__ import annotations

import dataclasses
from typing import Any

from ssagan_core.config import is_integer, is_number

from .checks import StudyError, all_factor_types, check_type, kind, listing, no_unknown
from .schema import (
    DISTRIBUTIONS,
    EFFECT_METRICS,
    SAMPLERS,
    SCHEDULERS,
    AdaptiveSeeds,
    Analysis,
    Dimension,
    Resources,
    Search,
)


def parse_seeds(values: Any) -> tuple[int, ...]:
    if not isinstance(values, list) or not values or not all(is_integer(s) and s >= 0 for s in values):
        raise StudyError(f"seeds: a non-empty list of integers >= 0, got {values!r}")
    if len(set(values)) != len(values):
        raise StudyError(f"seeds: listed twice: {sorted({s for s in values if values.count(s) > 1})}")
    return tuple(values)


def parse_adaptive_seeds(values: Any) -> AdaptiveSeeds | None:
    """`adaptive_seeds: {initial, max, step, max_trials, max_hours}`, checked; None when not given."""
    if values is None:
        return None
    _mapping_of(values, AdaptiveSeeds, "adaptive_seeds")
    r = AdaptiveSeeds(**values)
    for key, low in (("initial", 2), ("max", 2), ("step", 1)):
        value = getattr(r, key)
        if not is_integer(value) or value < low:
            raise StudyError(f"adaptive_seeds.{key}: an integer >= {low}, got {value!r}")
    if r.max < r.initial:
        raise StudyError(f"adaptive_seeds.max: {r.max} is below adaptive_seeds.initial ({r.initial})")
    if r.max_trials is not None and (not is_integer(r.max_trials) or r.max_trials < 1):
        raise StudyError(f"adaptive_seeds.max_trials: an integer >= 1 or null, got {r.max_trials!r}")
    if r.max_hours is not None and (not is_number(r.max_hours) or r.max_hours <= 0):
        raise StudyError(f"adaptive_seeds.max_hours: a number of hours > 0 or null, got {r.max_hours!r}")
    return r


def parse_analysis(values: Any) -> Analysis:
    values = values or {}
    _mapping_of(values, Analysis, "analysis")
    a = Analysis(**values)
    if not is_number(a.min_effect) or not 0 < a.min_effect < 1:
        raise StudyError(f"analysis.min_effect: a change of AUC in (0, 1), got {a.min_effect!r}")
    if not is_number(a.alpha) or not 0 < a.alpha < 0.5:
        raise StudyError(f"analysis.alpha: a probability in (0, 0.5), got {a.alpha!r}")
    if a.metric not in EFFECT_METRICS:
        raise StudyError(f"analysis.metric: {a.metric!r} is not one of {', '.join(EFFECT_METRICS)}")
    return Analysis(float(a.min_effect), float(a.alpha), a.metric)


def parse_search(values: Any) -> Search | None:
    if values is None:
        return None
    _mapping_of(values, Search, "search")
    sampler = values.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        raise StudyError(f"search.sampler: {sampler!r} is not one of {', '.join(SAMPLERS)}")
    metric = values.get("metric", "val_auc")
    if not isinstance(metric, str) or not metric.startswith("val_"):
        raise StudyError(
            f"search.metric: must be a validation metric (val_auc); never a test-set metric, got {metric!r}"
        )
    if metric != "val_auc":
        raise StudyError(f"search.metric: {metric!r} is not reported; use val_auc")
    scheduler = values.get("scheduler", "none")
    if scheduler not in SCHEDULERS:
        raise StudyError(f"search.scheduler: {scheduler!r} is not one of {', '.join(SCHEDULERS)}")
    space_raw = values.get("space")
    if not isinstance(space_raw, dict) or not space_raw:
        raise StudyError("search.space: a non-empty mapping of factor -> {distribution: [...]}")
    types = all_factor_types()
    space = {key: _dimension(key, spec, types, sampler) for key, spec in space_raw.items()}
    trials = values.get("trials", 20)
    if not is_integer(trials) or trials < 1:
        raise StudyError(f"search.trials: an integer >= 1, got {trials!r}")
    minimum = {"grace_period": 1, "reduction_factor": 2, "seed": 0}
    ints = {k: values.get(k, getattr(Search, k)) for k in minimum}
    for key, value in ints.items():
        if not is_integer(value) or value < minimum[key]:
            raise StudyError(f"search.{key}: an integer >= {minimum[key]}, got {value!r}")
    return Search(sampler, trials, metric, space, scheduler, **ints)


def _dimension(key: str, spec: Any, types: dict[str, tuple], sampler: str) -> Dimension:
    where = f"search.space.{key}"
    if key not in types:
        raise StudyError(f"{where}: unknown factor; factors are {listing(types)}")
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        raise StudyError(f"{where}: one of {{{': [low, high]}, {'.join(DISTRIBUTIONS)}: [...]}}, got {spec!r}")
    kind, args = next(iter(spec.items()))
    if not isinstance(args, list) or not args:
        raise StudyError(f"{where}.{kind}: a list, got {kind(args)}")
    if kind == "choice":
        for v in args:
            check_type(v, types[key], where)
        return Dimension("choice", choices=tuple(args))
    if len(args) != 2 or not all(is_number(a) for a in args) or not args[0] < args[1]:
        raise StudyError(f"{where}.{kind}: [low, high] with low < high, got {args!r}")
    if kind.startswith("log") and args[0] <= 0:
        raise StudyError(f"{where}.{kind}: low must be > 0 on a log scale, got {args[0]!r}")
    if kind in ("int", "log_int") and not all(is_integer(a) for a in args):
        raise StudyError(f"{where}.{kind}: integer bounds, got {args!r}")
    if sampler == "grid":
        raise StudyError(f"{where}: the grid sampler takes choice lists only, got {kind}")
    return Dimension(kind, args[0], args[1])


def parse_resources(values: Any) -> Resources:
    values = values or {}
    _mapping_of(values, Resources, "resources")
    r = Resources(**values)
    if not is_number(r.cpus_per_trial) or r.cpus_per_trial <= 0:
        raise StudyError(f"resources.cpus_per_trial: a number > 0, got {r.cpus_per_trial!r}")
    if not is_number(r.gpus_per_trial) or r.gpus_per_trial < 0:
        raise StudyError(f"resources.gpus_per_trial: a number >= 0 (fractions share a GPU), got {r.gpus_per_trial!r}")
    if r.gpus_per_trial > 1 and not float(r.gpus_per_trial).is_integer():
        raise StudyError(f"resources.gpus_per_trial: above 1 it must be whole, got {r.gpus_per_trial!r}")
    if r.max_concurrent is not None and (not is_integer(r.max_concurrent) or r.max_concurrent < 1):
        raise StudyError(f"resources.max_concurrent: an integer >= 1 or null, got {r.max_concurrent!r}")
    if not is_integer(r.retries) or r.retries < 0:
        raise StudyError(f"resources.retries: an integer >= 0, got {r.retries!r}")
    if not is_number(r.checkpoint_seconds) or r.checkpoint_seconds <= 0:
        raise StudyError(f"resources.checkpoint_seconds: a number > 0, got {r.checkpoint_seconds!r}")
    return r


def _mapping_of(values: Any, cls: type, section: str) -> None:
    """`values` is a mapping of `cls`'s fields, else a one-line StudyError naming the section or the unknown key."""
    keys = tuple(f.name for f in dataclasses.fields(cls))
    if not isinstance(values, dict):
        raise StudyError(f"{section}: a mapping ({', '.join(keys)}), got {kind(values)}")
    no_unknown(values, keys, f"{section}.")
