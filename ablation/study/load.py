"""Study files: YAML (+ `--set` overrides) -> a validated `Study`, or a one-line `StudyError` naming the key.

The `dataset:`, `model:` and `train:` sections take exactly the fields of `DataConfig`, `ModelConfig` and
`TrainConfig` (less the per-machine `RUNTIME_FIELDS`, which the runner sets); their types are read off the
dataclasses, so a new config field is a new study key with no change here. Values are checked twice: types here,
ranges by the configs, and every variant's configs are built once before any trial runs.
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from pathlib import Path
from typing import Any

import yaml

from ssagan_core.config import RUNTIME_FIELDS, ModelConfig, TrainConfig, is_integer, is_number
from ssagan_core.data import DataConfig, DatasetError

from .design import model_config, variants
from .schema import (
    DISTRIBUTIONS,
    EFFECT_METRICS,
    SAMPLERS,
    SCHEDULERS,
    TOP_KEYS,
    AdaptiveSeeds,
    Analysis,
    Dimension,
    Resources,
    Search,
    Study,
    rename_old_keys,
)


class StudyError(ValueError):
    """The study file cannot be run; the message is one line and names the key."""


class StudyDeprecation(UserWarning):
    """The study file uses a key that has a new name; it still runs (the CLI prints the message as one line)."""


# Config fields a study cannot set, per section: the image size is the dataset's, the runtime fields the runner's.
_NOT_STUDY_KEYS = {"model": ("image_size",), "train": RUNTIME_FIELDS}


def load_study(path: str | os.PathLike, overrides: list[str] = ()) -> Study:
    """Read, override (`KEY=VALUE`, VALUE parsed as YAML) and validate a study file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise StudyError(f"{path}: cannot read the study file ({e.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise StudyError(f"{path}: invalid YAML{where}: {problem}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise StudyError(f"{path}: a study file is a mapping of keys (name, dataset, model, ...), got {_kind(raw)}")
    raw, renamed = rename_old_keys(raw)
    for old, new in renamed:
        warnings.warn(f"{path}: {old} is now {new} (the config field's name); {old} still works", StudyDeprecation, 2)
    for item in overrides:
        _apply_override(raw, item)
    try:
        return parse_study(raw)
    except StudyError as e:
        raise StudyError(f"{path}: {e}") from None


def parse_study(raw: dict[str, Any]) -> Study:
    """Validate a study given as a plain dict (what the YAML file holds)."""
    raw = rename_old_keys(raw)[0]
    _no_unknown(raw, TOP_KEYS, "")
    name = raw.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise StudyError(f"name: required, letters, digits, '_', '-' or '.', got {name!r}")
    description = raw.get("description") or ""
    _check_type(description, (str,), "description")

    dataset = _section(raw, "dataset", DataConfig)
    if isinstance(dataset.get("root"), str):
        dataset["root"] = _expand(dataset["root"], "dataset.root")
    model = _section(raw, "model", ModelConfig)
    train = _section(raw, "train", TrainConfig)
    try:
        data_cfg = DataConfig(**dataset)
    except (DatasetError, ValueError, TypeError) as e:
        raise StudyError(str(e)) from None

    seeds = _seeds(raw.get("seeds", [0]))
    adaptive = _adaptive_seeds(raw.get("adaptive_seeds"))
    if adaptive:
        if "seeds" in raw:
            raise StudyError("adaptive_seeds: give either seeds (a fixed list) or adaptive_seeds, not both")
        seeds = tuple(range(adaptive.max))

    grid = _factors(raw.get("grid"), "grid", lists=True)
    loco = _factors(raw.get("loco"), "loco", lists=False)
    search = _search(raw.get("search"))
    if sum(bool(x) for x in (grid, loco, search)) > 1:
        raise StudyError("grid, loco, search: a study has one design; give only one of these sections")
    if adaptive and search:
        raise StudyError("adaptive_seeds: for grid and loco studies; a search assigns its seeds round-robin")
    study = Study(
        name=name,
        description=description,
        dataset=data_cfg.to_dict(),
        model=model,
        train=train,
        seeds=tuple(seeds),
        grid={k: tuple(v) for k, v in grid.items()},
        loco=loco,
        search=search,
        resources=_resources(raw.get("resources")),
        analysis=_analysis(raw.get("analysis")),
        adaptive_seeds=adaptive,
    )
    _check_configs(study)
    return study


def check_budget(study: Study, n_categories: int) -> None:
    """Refuse adaptive seeds whose trial budget cannot hold the first round on these categories."""
    r = study.adaptive_seeds
    if r is None or r.max_trials is None:
        return
    first = study.n_variants * r.initial * n_categories
    if r.max_trials < first:
        raise StudyError(
            f"adaptive_seeds.max_trials: {r.max_trials} cannot fit the first round ({study.n_variants} variants x "
            f"{r.initial} seeds x {n_categories} categories = {first} trials)"
        )


def data_config(study: Study) -> DataConfig:
    """The study's dataset as the `DataConfig` that loads it."""
    return DataConfig(**study.dataset)


def factor_keys() -> tuple[str, ...]:
    """Every key a grid, loco or search factor may vary."""
    return tuple(_all_factor_types())


# --- sections -------------------------------------------------------------------------------------------------


def _section(raw: dict, name: str, config: type) -> dict[str, Any]:
    values = raw.get(name) or {}
    if not isinstance(values, dict):
        raise StudyError(f"{name}: a mapping of settings, got {_kind(values)}")
    types = _field_types(config, _NOT_STUDY_KEYS.get(name, ()))
    _no_unknown(values, tuple(types), f"{name}.")
    for key, value in values.items():
        _check_type(value, types[key], f"{name}.{key}")
    return dict(values)


def _factors(values: Any, section: str, lists: bool) -> dict[str, Any]:
    if values is None:
        return {}
    if not isinstance(values, dict) or not values:
        raise StudyError(f"{section}: a non-empty mapping of factor -> {'list of values' if lists else 'value'}")
    types = _all_factor_types()
    for key, value in values.items():
        if key not in types:
            raise StudyError(f"{section}.{key}: unknown factor; factors are {_listing(types)}")
        if lists:
            if not isinstance(value, list) or not value:
                raise StudyError(f"{section}.{key}: a non-empty list of values, got {_kind(value)}")
            if len({repr(v) for v in value}) != len(value):
                raise StudyError(f"{section}.{key}: a value is listed twice in {value!r}")
            for v in value:
                _check_type(v, types[key], f"{section}.{key}")
        else:
            _check_type(value, types[key], f"{section}.{key}")
    return dict(values)


def _seeds(values: Any) -> tuple[int, ...]:
    if not isinstance(values, list) or not values or not all(is_integer(s) and s >= 0 for s in values):
        raise StudyError(f"seeds: a non-empty list of integers >= 0, got {values!r}")
    if len(set(values)) != len(values):
        raise StudyError(f"seeds: listed twice: {sorted({s for s in values if values.count(s) > 1})}")
    return tuple(values)


def _adaptive_seeds(values: Any) -> AdaptiveSeeds | None:
    """`adaptive_seeds: {initial, max, step, max_trials, max_hours}`, checked; None when not given."""
    if values is None:
        return None
    if not isinstance(values, dict):
        raise StudyError(f"adaptive_seeds: a mapping {{initial, max, step}}, got {_kind(values)}")
    _no_unknown(values, tuple(f.name for f in dataclasses.fields(AdaptiveSeeds)), "adaptive_seeds.")
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


def _analysis(values: Any) -> Analysis:
    values = values or {}
    if not isinstance(values, dict):
        raise StudyError(f"analysis: a mapping (min_effect, alpha), got {_kind(values)}")
    _no_unknown(values, tuple(f.name for f in dataclasses.fields(Analysis)), "analysis.")
    a = Analysis(**values)
    if not is_number(a.min_effect) or not 0 < a.min_effect < 1:
        raise StudyError(f"analysis.min_effect: a change of AUC in (0, 1), got {a.min_effect!r}")
    if not is_number(a.alpha) or not 0 < a.alpha < 0.5:
        raise StudyError(f"analysis.alpha: a probability in (0, 0.5), got {a.alpha!r}")
    if a.metric not in EFFECT_METRICS:
        raise StudyError(f"analysis.metric: {a.metric!r} is not one of {', '.join(EFFECT_METRICS)}")
    return Analysis(float(a.min_effect), float(a.alpha), a.metric)


def _search(values: Any) -> Search | None:
    if values is None:
        return None
    if not isinstance(values, dict):
        raise StudyError(f"search: a mapping, got {_kind(values)}")
    _no_unknown(values, tuple(f.name for f in dataclasses.fields(Search)), "search.")
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
    types = _all_factor_types()
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
        raise StudyError(f"{where}: unknown factor; factors are {_listing(types)}")
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        raise StudyError(f"{where}: one of {{{': [low, high]}, {'.join(DISTRIBUTIONS)}: [...]}}, got {spec!r}")
    kind, args = next(iter(spec.items()))
    if not isinstance(args, list) or not args:
        raise StudyError(f"{where}.{kind}: a list, got {_kind(args)}")
    if kind == "choice":
        for v in args:
            _check_type(v, types[key], where)
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


def _resources(values: Any) -> Resources:
    values = values or {}
    if not isinstance(values, dict):
        raise StudyError(f"resources: a mapping, got {_kind(values)}")
    _no_unknown(values, tuple(f.name for f in dataclasses.fields(Resources)), "resources.")
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


def _check_configs(study: Study) -> None:
    """Build every variant's configs once, so a bad value fails now with its key, not in a trial."""
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for variant in variants(study):
        try:
            model_config(variant.model, study.image_size)
            TrainConfig(**variant.train)
        except ValueError as e:
            field_name, _, problem = str(e).partition(":")
            key = f"{'train' if field_name in train_fields else 'model'}.{field_name}"
            where = f" (in variant {variant.name})" if key in variant.factors else ""
            raise StudyError(f"{key}:{problem}{where}") from None
    if study.search and study.search.scheduler == "asha" and not study.train.get("eval_every"):
        raise StudyError(
            "search.scheduler: asha stops trials on val_auc reported during training; set train.eval_every"
        )


# --- types ----------------------------------------------------------------------------------------------------

_SCALARS = {"bool": bool, "int": int, "float": float, "str": str, "None": type(None)}


def _field_types(config: type, exclude: tuple) -> dict[str, tuple]:
    """Study key (= field name) -> accepted Python types, parsed from the dataclass annotations (e.g. `int | None`)."""
    return {
        f.name: tuple(_parse_type(part.strip()) for part in str(f.type).split("|"))
        for f in dataclasses.fields(config)
        if f.name not in exclude
    }


def _parse_type(text: str) -> type | tuple:
    if text.startswith("tuple["):
        return ("list", _SCALARS[text[len("tuple[") :].split(",")[0].strip()])
    return _SCALARS[text]


def _all_factor_types() -> dict[str, tuple]:
    types = {f"model.{k}": v for k, v in _field_types(ModelConfig, _NOT_STUDY_KEYS["model"]).items()}
    return types | {f"train.{k}": v for k, v in _field_types(TrainConfig, _NOT_STUDY_KEYS["train"]).items()}


def _check_type(value: Any, accepted: tuple, where: str) -> None:
    for t in accepted:
        if isinstance(t, tuple):  # ("list", element type)
            if isinstance(value, list) and all(_matches(v, t[1]) for v in value):
                return
        elif _matches(value, t):
            return
    raise StudyError(f"{where}: expected {_describe(accepted)}, got {value!r} ({_kind(value)})")


def _matches(value: Any, t: type) -> bool:
    if t is float:
        return is_number(value)
    if t is int:
        return is_integer(value)
    if t is bool:
        return isinstance(value, bool)
    return isinstance(value, t)


def _describe(accepted: tuple) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
    return " or ".join(
        f"a list of {names[t[1]].split(' ', 1)[-1]}s" if isinstance(t, tuple) else names[t] for t in accepted
    )


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "an integer" if is_integer(value) else "a number" if is_number(value) else type(value).__name__
    )


def _no_unknown(values: dict, known: tuple, prefix: str) -> None:
    for key in values:
        if key not in known:
            raise StudyError(f"{prefix}{key}: unknown key; {prefix.rstrip('.') or 'a study'} takes {_listing(known)}")


def _listing(keys) -> str:
    return ", ".join(keys)


def _expand(value: str, where: str) -> str:
    for var in re.findall(r"\$\{(\w+)\}|\$(\w+)", value):
        name = var[0] or var[1]
        if name not in os.environ:
            raise StudyError(f"{where}: environment variable {name} is not set (in {value!r})")
    return os.path.expanduser(os.path.expandvars(value))


def _apply_override(raw: dict, item: str) -> None:
    """`--set a.b.c=VALUE`: VALUE is read as YAML and put at the dotted key (sections are created as needed)."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise StudyError(f"--set {item!r}: expected KEY=VALUE, e.g. dataset.root=/data/mvtec")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as e:
        raise StudyError(f"--set {key}: the value is not valid YAML ({str(e).splitlines()[0]})") from None
    node = raw
    parts = key.strip().split(".")
    # grid/loco factors contain dots themselves: `grid.model.attention=[true, false]`
    if parts[0] in ("grid", "loco") and len(parts) > 2:
        parts = [parts[0], ".".join(parts[1:])]
    for part in parts[:-1]:
        if not isinstance(node.get(part, {}), dict):
            raise StudyError(f"--set {key}: {part} is not a section")
        node = node.setdefault(part, {})
    node[parts[-1]] = value
