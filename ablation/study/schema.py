"""The validated study as plain data: `Study` and its parts, its saved form, and the trial-key format.

Plain Python values only (no torch, no model library), so that the report can read the study saved beside the results.
`ablation.study.load` is what validates a study file into a `Study`; `Study.to_dict` is what the runner saves as
`study.yaml`, and `Study.from_dict` reads that back without validating again.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from typing import Any

DESIGNS = ("grid", "loco", "search")
SAMPLERS = ("tpe", "random", "grid")
SCHEDULERS = ("none", "asha")
EFFECT_METRICS = ("auc", "val_auc")
DISTRIBUTIONS = ("uniform", "log_uniform", "int", "log_int", "choice")
TOP_KEYS = ("name", "description", "dataset", "model", "train", "seeds", "adaptive_seeds", *DESIGNS, "analysis",
            "resources")  # fmt: skip
# Study keys that were renamed so that the study key, the config field and the Parquet column are one word. Old
# study files (and the study.yaml of old output folders) are still read; `load_study` warns about them.
RENAMED = {"model.name": "model.model", "train.amp": "train.compute_dtype"}
# Renamed keys whose values changed too: old value -> new value (others pass through, to be refused by name).
RENAMED_VALUES = {"train.amp": {True: "bf16", False: "fp32"}}


@dataclass(frozen=True)
class Dimension:
    """One searched parameter of a `search:` study: a distribution with its bounds (as given) or its choices."""

    kind: str  # one of DISTRIBUTIONS
    low: float | None = None
    high: float | None = None
    choices: tuple = ()

    def to_dict(self) -> dict[str, list]:
        """The study-file form: `{log_uniform: [low, high]}` or `{choice: [a, b]}`."""
        return {self.kind: list(self.choices) if self.kind == "choice" else [self.low, self.high]}


@dataclass(frozen=True)
class Search:
    """A `search:` study: which Optuna sampler proposes which factors, how many trials per category."""

    sampler: str = "tpe"
    """Optuna's sampler: `tpe`, `random` or `grid` (the grid sampler takes `choice` dimensions only)."""
    trials: int = 20
    """Trials per category (each category is its own search)."""
    metric: str = "val_auc"
    """What the sampler maximises: `val_auc`, the validation split's AUC (a search never selects on the test set)."""
    space: dict[str, Dimension] = field(default_factory=dict)
    """Factor -> distribution: `{log_uniform: [lo, hi]}`, `{uniform: [lo, hi]}`, `{int: [lo, hi]}`,
    `{log_int: [lo, hi]}` or `{choice: [a, b, ...]}`."""
    scheduler: str = "none"
    """`none`, or `asha`: stop poor trials early on `val_auc` (needs `train.eval_every`)."""
    grace_period: int = 1
    """ASHA: training iterations before a trial may be stopped."""
    reduction_factor: int = 3
    """ASHA: keep 1 in this many trials at each rung."""
    seed: int = 0
    """The sampler's seed. Trials get the study's seeds round-robin (a searcher cannot average over seeds)."""


@dataclass(frozen=True)
class Analysis:
    """How effects are judged (the study file's `analysis:` section); see docs/statistics.md."""

    min_effect: float = 0.02
    """The smallest change of test AUC that matters. An effect whose interval lies inside +-min_effect is
    *negligible*; the default, 2 AUC points, is about the seed-to-seed spread of these models, below which a
    CPU-sized study cannot settle an effect anyway."""
    alpha: float = 0.05
    """The chance, over the whole study, that any effect gets a wrong verdict (corrected for the number of effects
    and, with adaptive seeds, for the repeated looks); in (0, 0.5)."""
    metric: str = "auc"
    """What effects are measured on: `auc` (test AUC: how much a component helps) or `val_auc` (validation AUC: for
    choosing a setting, which must not look at the test set)."""


@dataclass(frozen=True)
class AdaptiveSeeds:
    """Adaptive seeds (`adaptive_seeds: {initial: 3, max: 12, step: 2}`): run `initial` seeds, then `step` more at a
    time for the variants of every undecided effect, until each effect is decided or a budget is spent."""

    initial: int = 3
    """Seeds of the first round (every variant)."""
    max: int = 12
    """The most seeds any variant gets (seeds are 0, 1, ..., max - 1)."""
    step: int = 2
    """Seeds added per round to the variants of the effects still undecided."""
    max_trials: int | None = None
    """Stop when the next round would take the study past this many trials (null: no limit)."""
    max_hours: float | None = None
    """Start no new round after this many hours of the run (a `--resume` starts its own clock; null: no limit)."""

    def looks(self) -> list[int]:
        """The seed counts at which effects are judged."""
        counts = list(range(self.initial, self.max, self.step))
        return [*counts, self.max] if not counts or counts[-1] != self.max else counts


@dataclass(frozen=True)
class Resources:
    """What each trial gets from the cluster (the study file's `resources:` section)."""

    cpus_per_trial: float = 1
    """CPUs per trial (also its torch threads)."""
    gpus_per_trial: float = 0
    """GPUs per trial; fractions share a GPU (0.25: four trials on one GPU)."""
    max_concurrent: int | None = None
    """The most trials at once; null: as many as the cluster fits."""
    retries: int = 1
    """How many times a failed trial is retried (from its last checkpoint) before it is recorded as failed."""
    checkpoint_seconds: float = 300
    """A trial saves a resumable checkpoint at most this often (and Ray retries resume from it)."""


@dataclass(frozen=True)
class Study:
    """A validated study: what to train (dataset, base model and train settings), the design that varies it, the
    seeds, and the resources per trial. Factor keys are `<section>.<field>` (`model.attention`, `train.lr`)."""

    name: str
    """The study's name (letters, digits, `_ - .`); also its default output folder, `reports/<name>/`."""
    description: str
    """One line saying what question the study answers (shown under the report's title)."""
    dataset: dict[str, Any]
    """The images: `DataConfig`'s fields (below); validated, every field resolved."""
    model: dict[str, Any]
    """The base model: `ModelConfig`'s fields (below), as given; the others take the preset's values."""
    train: dict[str, Any]
    """The base training: `TrainConfig`'s fields (below), as given."""
    seeds: tuple[int, ...]
    """Every variant runs with every seed (the same seeds across variants, so effects are paired)."""
    grid: dict[str, tuple] = field(default_factory=dict)
    """`factor: [values]`: the trials are the full cross product x seeds x categories."""
    loco: dict[str, Any] = field(default_factory=dict)
    """Leave one component out, `factor: off_value`: the base, then each component switched off alone."""
    search: Search | None = None
    """Sample instead of enumerating (hyperparameter studies): the `search:` keys below."""
    resources: Resources = field(default_factory=Resources)
    """What each trial gets: the `resources:` keys below."""
    analysis: Analysis = field(default_factory=Analysis)
    """How effects are judged: the `analysis:` keys below."""
    adaptive_seeds: AdaptiveSeeds | None = None
    """Instead of `seeds`: add seeds until every effect is decided (`{initial: 3, max: 12, step: 2}`; the
    `adaptive_seeds:` keys below). The seeds are then 0, 1, ..., max - 1, in that order."""

    @property
    def design(self) -> str:
        return "search" if self.search else "loco" if self.loco else "grid"

    @property
    def image_size(self) -> int:
        return int(self.dataset["image_size"])

    @property
    def n_variants(self) -> int:
        """Variants of a grid (the cross product) or LOCO study (the base + one per component); 1 for a search."""
        if self.grid:
            return math.prod(len(values) for values in self.grid.values())
        return len(self.loco) + 1

    def planned_trials(self, n_categories: int) -> int:
        """Trials the study asks for on `n_categories` categories (adaptive seeds: the most it may run)."""
        if self.search:
            return self.search.trials * n_categories
        return self.n_variants * len(self.seeds) * n_categories

    @property
    def first_seeds(self) -> tuple[int, ...]:
        """The seeds of the first round: all of them, or the adaptive study's `initial` ones."""
        return self.seeds[: self.adaptive_seeds.initial] if self.adaptive_seeds else self.seeds

    def to_dict(self) -> dict[str, Any]:
        """The study as run, in the study-file format (what `study.yaml` beside the results holds): every section,
        with the resolved dataset and resources, so the file can be run again as it is."""
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "dataset": dict(self.dataset),
            "model": dict(self.model),
            "train": dict(self.train),
        }
        if self.adaptive_seeds:
            out["adaptive_seeds"] = dataclasses.asdict(self.adaptive_seeds)
        else:
            out["seeds"] = list(self.seeds)
        if self.grid:
            out["grid"] = {k: list(v) for k, v in self.grid.items()}
        if self.loco:
            out["loco"] = dict(self.loco)
        if self.search:
            search = dataclasses.asdict(self.search)
            search["space"] = {k: d.to_dict() for k, d in self.search.space.items()}
            out["search"] = search
        out["analysis"] = dataclasses.asdict(self.analysis)
        out["resources"] = dataclasses.asdict(self.resources)
        return _plain(out)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Study:
        """A study saved by `to_dict` (or an older output folder's study file), read without validating it again:
        it was validated when it ran. Old keys (`RENAMED`) are read as their new names."""
        raw = rename_old_keys(raw)[0]
        search = raw.get("search")
        if search:
            space = {k: _dimension(spec) for k, spec in (search.get("space") or {}).items()}
            search = Search(**{**search, "space": space})
        adaptive = AdaptiveSeeds(**raw["adaptive_seeds"]) if raw.get("adaptive_seeds") else None
        return cls(
            name=str(raw.get("name") or ""),
            description=str(raw.get("description") or ""),
            dataset={k: tuple(v) if isinstance(v, list) else v for k, v in (raw.get("dataset") or {}).items()},
            model=dict(raw.get("model") or {}),
            train=dict(raw.get("train") or {}),
            seeds=tuple(range(adaptive.max)) if adaptive else tuple(raw.get("seeds") or (0,)),
            grid={k: tuple(v) for k, v in (raw.get("grid") or {}).items()},
            loco=dict(raw.get("loco") or {}),
            search=search or None,
            resources=Resources(**(raw.get("resources") or {})),
            analysis=Analysis(**(raw.get("analysis") or {})),
            adaptive_seeds=adaptive,
        )


def rename_old_keys(raw: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """(a copy of a study dict with the old keys of `RENAMED` under their new names, the (old, new) pairs found).
    Renamed keys appear as section keys (`model: {name: ...}`) and as factors (`grid: {model.name: [...]}`)."""
    raw, found = dict(raw), []
    for old, new in RENAMED.items():
        section, old_name = old.split(".", 1)
        new_name = new.split(".", 1)[1]
        value = functools.partial(_renamed_value, RENAMED_VALUES.get(old, {}))
        values = raw.get(section)
        if isinstance(values, dict) and old_name in values:
            raw[section] = {(new_name if k == old_name else k): (value(v) if k == old_name else v)
                            for k, v in values.items()}  # fmt: skip
            found.append((f"{section}.{old_name}", f"{section}.{new_name}"))
        for design in DESIGNS:
            factors = raw.get(design)
            if design == "search" and isinstance(factors, dict):
                space = factors.get("space")
                if isinstance(space, dict) and old in space:
                    raw[design] = {**factors, "space": {(new if k == old else k): v for k, v in space.items()}}
                    found.append((f"search.space.{old}", f"search.space.{new}"))
            elif isinstance(factors, dict) and old in factors:
                raw[design] = {(new if k == old else k): (value(v, many=True) if k == old else v)
                               for k, v in factors.items()}  # fmt: skip
                found.append((f"{design}.{old}", f"{design}.{new}"))
    return raw, found


def _renamed_value(mapping: dict, value: Any, many: bool = False) -> Any:
    """An old key's value (or, `many`, a factor's list of values) as the new key reads it (`RENAMED_VALUES`)."""
    if many and isinstance(value, list):
        return [_renamed_value(mapping, v) for v in value]
    return mapping.get(value, value) if isinstance(value, bool) else value


def column(factor: str) -> str:
    """The trials.parquet column of a factor: its field name (`model.attention` -> `attention`)."""
    return factor.split(".", 1)[-1]


def format_value(value: Any) -> str:
    """A factor value as variant names and the report write it: true/false, 4 significant digits, [a,b]."""
    if isinstance(value, bool) or type(value).__name__ in ("bool", "bool_"):  # numpy's bool is not a bool
        return "true" if value else "false"
    if isinstance(value, float) or type(value).__name__.startswith("float"):  # float64 is a float; float32 is not
        return f"{float(value):.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    return str(value)


# --- trial keys: "<variant>|seed=<s>|<category>", stable across resumes (Ray's trial ids are not) ---------------


def trial_key(name: str, seed: int, category: str) -> str:
    """The ledger key of one trial; `name` is the variant (grid, LOCO) or `search#NNNN` (the search's Nth trial)."""
    return f"{name}|seed={seed}|{category}"


def search_trial_name(index: int) -> str:
    return f"search#{index:04d}"


def trial_name(key: str) -> str:
    """A trial's name without seed and category: "search#0003|seed=0|nut" -> "search#0003"."""
    return str(key).split("|", 1)[0]


def search_index(key: str) -> int:
    """A search trial's sampling order: "search#0003|seed=0|nut" -> 3 (-1 for a grid trial)."""
    digits = trial_name(key).rsplit("#", 1)[-1]
    return int(digits) if digits.isdigit() else -1


def _dimension(spec: dict[str, Any]) -> Dimension:
    kind, args = next(iter(spec.items()))
    if kind == "choice":
        return Dimension("choice", choices=tuple(args))
    return Dimension(kind, args[0], args[1])


def _plain(value: Any) -> Any:
    """Tuples as lists, recursively (YAML's safe dumper writes lists, not tuples)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
