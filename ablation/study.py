"""Study files: YAML -> a validated `Study`, or a one-line `StudyError` naming the key that is wrong.

The `dataset:`, `model:` and `train:` sections take exactly the fields of `DataConfig`, `ModelConfig` and
`TrainConfig` (with `model.name` for `ModelConfig.model`); their types are read off the dataclasses, so a new config
field is a new study key with no change here. Values are checked twice: types here, ranges by the configs.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ssagan_core import ModelConfig, TrainConfig
from ssagan_core.datasets import DataConfig, DatasetError

SAMPLERS = ("tpe", "random", "grid")
SCHEDULERS = ("none", "asha")
DISTRIBUTIONS = ("uniform", "log_uniform", "int", "log_int", "choice")
# Set by the runner from `resources:`, not by the study.
RUNNER_TRAIN_KEYS = ("device", "num_threads")
TOP_KEYS = ("name", "description", "dataset", "model", "train", "seeds", "grid", "loco", "search", "resources")


class StudyError(ValueError):
    """The study file cannot be run; the message is one line and names the key."""


@dataclass(frozen=True)
class Dimension:
    """One searched parameter of a `search:` study."""

    kind: str  # one of DISTRIBUTIONS
    low: float | None = None
    high: float | None = None
    choices: tuple = ()


@dataclass(frozen=True)
class Search:
    sampler: str = "tpe"
    trials: int = 20
    metric: str = "val_auc"
    space: dict[str, Dimension] = field(default_factory=dict)
    scheduler: str = "none"
    grace_period: int = 1
    reduction_factor: int = 3
    seed: int = 0


@dataclass(frozen=True)
class Resources:
    cpus_per_trial: float = 1
    gpus_per_trial: float = 0
    max_concurrent: int | None = None
    retries: int = 1
    """How many times a failed trial is retried (from its last checkpoint) before it is recorded as failed."""
    checkpoint_seconds: float = 300
    """A trial saves a resumable checkpoint at most this often (and Ray retries resume from it)."""


@dataclass(frozen=True)
class Study:
    name: str
    description: str
    dataset: DataConfig
    model: dict[str, Any]  # base ModelConfig fields (study keys), as given
    train: dict[str, Any]  # base TrainConfig fields, as given
    seeds: tuple[int, ...]
    grid: dict[str, tuple] = field(default_factory=dict)  # factor -> values
    loco: dict[str, Any] = field(default_factory=dict)  # factor -> its "off" value
    search: Search | None = None
    resources: Resources = field(default_factory=Resources)
    source: dict[str, Any] = field(default_factory=dict)  # the resolved study as a plain dict (saved with the results)

    @property
    def design(self) -> str:
        return "search" if self.search else "loco" if self.loco else "grid"


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
    for item in overrides:
        _apply_override(raw, item)
    try:
        return parse_study(raw)
    except StudyError as e:
        raise StudyError(f"{path}: {e}") from None


def parse_study(raw: dict[str, Any]) -> Study:
    """Validate a study given as a plain dict (what the YAML file holds)."""
    _no_unknown(raw, TOP_KEYS, "")
    name = raw.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise StudyError(f"name: required, letters, digits, '_', '-' or '.', got {name!r}")
    description = raw.get("description") or ""
    _check_type(description, (str,), "description")

    dataset = _section(raw, "dataset", DataConfig, {})
    if isinstance(dataset.get("root"), str):
        dataset["root"] = _expand(dataset["root"], "dataset.root")
    model = _section(raw, "model", ModelConfig, {"name": "model"}, exclude=("image_size",))
    train = _section(raw, "train", TrainConfig, {}, exclude=RUNNER_TRAIN_KEYS)
    try:
        data_cfg = DataConfig(**dataset)
    except DatasetError as e:
        raise StudyError(str(e)) from None
    except (ValueError, TypeError) as e:
        raise StudyError(str(e)) from None

    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(_is_int(s) and s >= 0 for s in seeds):
        raise StudyError(f"seeds: a non-empty list of integers >= 0, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise StudyError(f"seeds: listed twice: {sorted({s for s in seeds if seeds.count(s) > 1})}")

    grid = _factors(raw.get("grid"), "grid", lists=True)
    loco = _factors(raw.get("loco"), "loco", lists=False)
    search = _search(raw.get("search"))
    if sum(bool(x) for x in (grid, loco, search)) > 1:
        raise StudyError("grid, loco, search: a study has one design; give only one of these sections")
    resources = _resources(raw.get("resources"))

    study = Study(
        name=name,
        description=description,
        dataset=data_cfg,
        model=model,
        train=train,
        seeds=tuple(seeds),
        grid={k: tuple(v) for k, v in grid.items()},
        loco=loco,
        search=search,
        resources=resources,
        source=raw,
    )
    _check_configs(study)
    return study


def model_config(model: dict[str, Any], image_size: int) -> ModelConfig:
    """The `ModelConfig` of study-file model settings (`name` -> `model`)."""
    kwargs = {("model" if k == "name" else k): (tuple(v) if isinstance(v, list) else v) for k, v in model.items()}
    return ModelConfig(image_size=image_size, **kwargs)


def factor_keys() -> tuple[str, ...]:
    """Every key a grid, loco or search factor may vary."""
    model = [f"model.{'name' if f.name == 'model' else f.name}" for f in dataclasses.fields(ModelConfig)]
    train = [f"train.{f.name}" for f in dataclasses.fields(TrainConfig) if f.name not in RUNNER_TRAIN_KEYS]
    return tuple(k for k in model + train if k != "model.image_size")


# --- sections -------------------------------------------------------------------------------------------------


def _section(raw: dict, name: str, config: type, renames: dict[str, str], exclude: tuple = ()) -> dict[str, Any]:
    values = raw.get(name) or {}
    if not isinstance(values, dict):
        raise StudyError(f"{name}: a mapping of settings, got {_kind(values)}")
    types = _field_types(config, renames, exclude)
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


def _search(values: Any) -> Search | None:
    if values is None:
        return None
    if not isinstance(values, dict):
        raise StudyError(f"search: a mapping, got {_kind(values)}")
    _no_unknown(
        values,
        ("sampler", "trials", "metric", "space", "scheduler", "grace_period", "reduction_factor", "seed"),
        "search.",
    )
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
    space = {}
    for key, spec in space_raw.items():
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
            space[key] = Dimension("choice", choices=tuple(args))
            continue
        if len(args) != 2 or not all(_is_number(a) for a in args) or not args[0] < args[1]:
            raise StudyError(f"{where}.{kind}: [low, high] with low < high, got {args!r}")
        if kind.startswith("log") and args[0] <= 0:
            raise StudyError(f"{where}.{kind}: low must be > 0 on a log scale, got {args[0]!r}")
        if kind in ("int", "log_int") and not all(_is_int(a) for a in args):
            raise StudyError(f"{where}.{kind}: integer bounds, got {args!r}")
        if sampler == "grid":
            raise StudyError(f"{where}: the grid sampler takes choice lists only, got {kind}")
        space[key] = Dimension(kind, float(args[0]), float(args[1]))
    trials = values.get("trials", 20)
    if not _is_int(trials) or trials < 1:
        raise StudyError(f"search.trials: an integer >= 1, got {trials!r}")
    minimum = {"grace_period": 1, "reduction_factor": 2, "seed": 0}
    ints = {k: values.get(k, {"grace_period": 1, "reduction_factor": 3, "seed": 0}[k]) for k in minimum}
    for key, value in ints.items():
        if not _is_int(value) or value < minimum[key]:
            raise StudyError(f"search.{key}: an integer >= {minimum[key]}, got {value!r}")
    return Search(sampler, trials, metric, space, scheduler, **ints)


def _resources(values: Any) -> Resources:
    values = values or {}
    if not isinstance(values, dict):
        raise StudyError(f"resources: a mapping, got {_kind(values)}")
    fields_ = {f.name for f in dataclasses.fields(Resources)}
    _no_unknown(values, tuple(fields_), "resources.")
    r = Resources(**values)
    if not _is_number(r.cpus_per_trial) or r.cpus_per_trial <= 0:
        raise StudyError(f"resources.cpus_per_trial: a number > 0, got {r.cpus_per_trial!r}")
    if not _is_number(r.gpus_per_trial) or r.gpus_per_trial < 0:
        raise StudyError(f"resources.gpus_per_trial: a number >= 0 (fractions share a GPU), got {r.gpus_per_trial!r}")
    if r.gpus_per_trial > 1 and not float(r.gpus_per_trial).is_integer():
        raise StudyError(f"resources.gpus_per_trial: above 1 it must be whole, got {r.gpus_per_trial!r}")
    if r.max_concurrent is not None and (not _is_int(r.max_concurrent) or r.max_concurrent < 1):
        raise StudyError(f"resources.max_concurrent: an integer >= 1 or null, got {r.max_concurrent!r}")
    if not _is_int(r.retries) or r.retries < 0:
        raise StudyError(f"resources.retries: an integer >= 0, got {r.retries!r}")
    if not _is_number(r.checkpoint_seconds) or r.checkpoint_seconds <= 0:
        raise StudyError(f"resources.checkpoint_seconds: a number > 0, got {r.checkpoint_seconds!r}")
    return r


def _check_configs(study: Study) -> None:
    """Build every variant's configs once, so a bad value fails now with its key, not in a trial."""
    from .design import variants  # late import: design imports this module

    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for variant in variants(study):
        try:
            model_config(variant.model, study.dataset.image_size)
            TrainConfig(**variant.train)
        except ValueError as e:
            field_name, _, problem = str(e).partition(":")
            section = "train" if field_name in train_fields else "model"
            key = f"{section}.{'name' if field_name == 'model' else field_name}"
            where = f" (in variant {variant.name})" if key in variant.factors else ""
            raise StudyError(f"{key}:{problem}{where}") from None
    if study.search and study.search.scheduler == "asha" and not study.train.get("eval_every"):
        raise StudyError(
            "search.scheduler: asha stops trials on val_auc reported during training; set train.eval_every"
        )


# --- types ----------------------------------------------------------------------------------------------------

_SCALARS = {"bool": bool, "int": int, "float": float, "str": str, "None": type(None)}


def _field_types(config: type, renames: dict[str, str], exclude: tuple) -> dict[str, tuple]:
    """Study key -> accepted Python types, parsed from the dataclass annotations (e.g. `int | None`)."""
    out = {}
    for f in dataclasses.fields(config):
        if f.name in exclude:
            continue
        key = next((k for k, v in renames.items() if v == f.name), f.name)
        out[key] = tuple(_parse_type(part.strip()) for part in str(f.type).split("|"))
    return out


def _parse_type(text: str) -> type | tuple:
    if text.startswith("tuple["):
        return ("list", _SCALARS[text[len("tuple[") :].split(",")[0].strip()])
    return _SCALARS[text]


def _all_factor_types() -> dict[str, tuple]:
    types = {f"model.{k}": v for k, v in _field_types(ModelConfig, {"name": "model"}, ("image_size",)).items()}
    types |= {f"train.{k}": v for k, v in _field_types(TrainConfig, {}, RUNNER_TRAIN_KEYS).items()}
    return types


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
        return _is_number(value)
    if t is int:
        return _is_int(value)
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
        type(value), "an integer" if _is_int(value) else "a number" if _is_number(value) else type(value).__name__
    )


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


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
    # grid/loco/search.space factors contain dots themselves: `grid.model.attention=[true, false]`
    if parts[0] in ("grid", "loco") and len(parts) > 2:
        parts = [parts[0], ".".join(parts[1:])]
    for part in parts[:-1]:
        if not isinstance(node.get(part, {}), dict):
            raise StudyError(f"--set {key}: {part} is not a section")
        node = node.setdefault(part, {})
    node[parts[-1]] = value
