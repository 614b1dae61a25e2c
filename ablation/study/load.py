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

from ssagan_core.config import ModelConfig, TrainConfig
from ssagan_core.data import DataConfig, DatasetError

from .checks import NOT_STUDY_KEYS, StudyError, all_factor_types, check_type, field_types, kind, listing, no_unknown
from .design import model_config, variants
from .schema import TOP_KEYS, Study, rename_old_keys
from .sections import parse_adaptive_seeds, parse_analysis, parse_resources, parse_search, parse_seeds


class StudyDeprecation(UserWarning):
    """The study file uses a key that has a new name; it still runs (the CLI prints the message as one line)."""


def load_study(path: str | os.PathLike, overrides: list[str] = ()) -> Study:
    """Read, override (`KEY=VALUE`, VALUE parsed as YAML) and validate a study file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_STUDY_BYTES and path.is_file():
            raise StudyError(f"{path}: the study file is {size / 2**20:.1f} MB; a study file is at most 1 MB")
        text = path.read_text()
    except OSError as e:
        raise StudyError(f"{path}: cannot read the study file ({e.strerror})") from None
    try:
        raw = _read_yaml(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise StudyError(f"{path}: invalid YAML{where}: {problem}") from None
    except StudyError as e:
        raise StudyError(f"{path}: {e}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise StudyError(f"{path}: a study file is a mapping of keys (name, dataset, model, ...), got {kind(raw)}")
    raw, renamed = rename_old_keys(raw)
    for old, new in renamed:
        warnings.warn(f"{path}: {old} is now {new} (the config field's name); {old} still works", StudyDeprecation, 2)
    for item in overrides:
        _apply_override(raw, item)
    try:
        return parse_study(raw)
    except StudyError as e:
        raise StudyError(f"{path}: {e}") from None


MAX_STUDY_BYTES = 2**20
MAX_YAML_VALUES = 10_000  # a study file has a few hundred; aliases (*a) that expand past this are a "YAML bomb"


def _read_yaml(text: str) -> Any:
    """`yaml.safe_load`, refusing a key given twice in one mapping (PyYAML keeps the last silently) and aliases
    that expand to more than `MAX_YAML_VALUES` values (PyYAML shares them, but every later walk would expand them)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node, "", [0])
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_nodes(node: yaml.Node, where: str, count: list[int]) -> None:
    count[0] += 1
    if count[0] > MAX_YAML_VALUES:
        raise StudyError(f"YAML aliases expand to more than {MAX_YAML_VALUES:,} values; write the values out")
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            if name is not None and name in seen:
                first, second = seen[name], key.start_mark.line + 1
                prefix = f"{where}: {name}" if where else f"{name}:"
                raise StudyError(f"{prefix} given twice (lines {first} and {second})")
            if name is not None:
                seen[name] = key.start_mark.line + 1
            _check_nodes(value, f"{where}.{name}" if where else str(name), count)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_nodes(item, where, count)


def parse_study(raw: dict[str, Any]) -> Study:
    """Validate a study given as a plain dict (what the YAML file holds)."""
    raw = rename_old_keys(raw)[0]
    no_unknown(raw, TOP_KEYS, "")
    name = raw.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise StudyError(f"name: required, letters, digits, '_', '-' or '.', got {name!r}")
    description = raw.get("description") or ""
    check_type(description, (str,), "description")

    dataset = _section(raw, "dataset", DataConfig)
    if isinstance(dataset.get("root"), str):
        dataset["root"] = _expand(dataset["root"], "dataset.root")
    model = _section(raw, "model", ModelConfig)
    train = _section(raw, "train", TrainConfig)
    try:
        data_cfg = DataConfig(**dataset)
    except (DatasetError, ValueError, TypeError) as e:
        raise StudyError(str(e)) from None

    seeds = parse_seeds(raw.get("seeds", [0]))
    adaptive = parse_adaptive_seeds(raw.get("adaptive_seeds"))
    if adaptive:
        if "seeds" in raw:
            raise StudyError("adaptive_seeds: give either seeds (a fixed list) or adaptive_seeds, not both")
        seeds = tuple(range(adaptive.max))

    grid = _factors(raw.get("grid"), "grid", lists=True)
    loco = _factors(raw.get("loco"), "loco", lists=False)
    search = parse_search(raw.get("search"))
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
        resources=parse_resources(raw.get("resources")),
        analysis=parse_analysis(raw.get("analysis")),
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
    return tuple(all_factor_types())


# --- sections -------------------------------------------------------------------------------------------------


def _section(raw: dict, name: str, config: type) -> dict[str, Any]:
    values = raw.get(name) or {}
    if not isinstance(values, dict):
        raise StudyError(f"{name}: a mapping of settings, got {kind(values)}")
    types = field_types(config, NOT_STUDY_KEYS.get(name, ()))
    no_unknown(values, tuple(types), f"{name}.")
    for key, value in values.items():
        check_type(value, types[key], f"{name}.{key}")
    return dict(values)


def _factors(values: Any, section: str, lists: bool) -> dict[str, Any]:
    if values is None:
        return {}
    if not isinstance(values, dict) or not values:
        raise StudyError(f"{section}: a non-empty mapping of factor -> {'list of values' if lists else 'value'}")
    types = all_factor_types()
    for key, value in values.items():
        if key not in types:
            raise StudyError(f"{section}.{key}: unknown factor; factors are {listing(types)}")
        if lists:
            if not isinstance(value, list) or not value:
                raise StudyError(f"{section}.{key}: a non-empty list of values, got {kind(value)}")
            if len({repr(v) for v in value}) != len(value):
                raise StudyError(f"{section}.{key}: a value is listed twice in {value!r}")
            for v in value:
                check_type(v, types[key], f"{section}.{key}")
        else:
            check_type(value, types[key], f"{section}.{key}")
    return dict(values)


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
