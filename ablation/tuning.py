"""Drive a study's trials through Ray Tune with an Optuna searcher and record each outcome as it happens.

Grid and LOCO studies: the trials are enumerated up front and Optuna's `GridSampler` walks them, one categorical
dimension whose choices are the trial keys, with `num_samples` = the number of keys exactly (GridSampler re-runs
visited points when asked for more). `tune.grid_search` is never used (OptunaSearch rejects it). Search studies: the
named Optuna sampler proposes the searched factors; seeds are not searched but assigned round-robin (a searcher
cannot average over seeds; the report does), and an optional ASHA scheduler stops poor trials on `val_auc`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from .design import TrialSpec, column, spec_for, variant_with
from .results import FAILED, OK, STOPPED, ResultStore, make_row
from .study import Dimension, Study
from .trainable import HISTORY_PART, ROW_FILE, SCORES_PART, run_trial

log = logging.getLogger("ablation")


class _OptunaSearch(OptunaSearch):
    """OptunaSearch that skips progress reports without the metric (val_auc is reported at evaluation points only;
    the stock class indexes every report by the metric and fails the run)."""

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if self.metric in result:
            super().on_trial_result(trial_id, result)


class Ledger(tune.Callback):
    """Writes each finished, failed or early-stopped trial to the result store the moment Tune reports it."""

    def __init__(self, store: ResultStore, specs: Callable[[dict], TrialSpec], context: dict[str, Any]) -> None:
        self.store, self.specs, self.context = store, specs, context
        self.finished: dict[str, int] = {}  # trial key -> outcomes recorded in this round

    def __getstate__(self) -> dict:  # Tune pickles its callbacks into tuner.pkl; the ledger only lives in-process
        return {"finished": self.finished}

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        spec = self.specs(trial.config)
        result = trial.last_result or {}
        checkpoint = trial.checkpoint
        if result.get("done") and checkpoint is not None:
            with checkpoint.as_directory() as d:
                d = Path(d)
                row = json.loads((d / ROW_FILE).read_text())
                self._record(spec, row, pd.read_parquet(d / SCORES_PART), pd.read_parquet(d / HISTORY_PART))
            return
        # Stopped early by the scheduler (search studies only): keep what it reported.
        metrics = {"val_auc": result.get("val_auc", math.nan)}
        self._record(spec, make_row(spec, self.context, STOPPED, metrics, trial_id=trial.trial_id))

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        spec = self.specs(trial.config)
        self._record(spec, make_row(spec, self.context, FAILED, error=_error_line(trial), trial_id=trial.trial_id))

    def _record(self, spec: TrialSpec, row: dict, scores=None, history=None) -> None:
        self.store.add(row, scores, history)
        self.finished[spec.key] = self.finished.get(spec.key, 0) + 1


def run_grid(
    study: Study,
    specs: list[TrialSpec],
    data_refs: dict[str, Any],
    store: ResultStore,
    context: dict[str, Any],
    storage: str,
    experiment: str,
    callbacks: list,
) -> dict[str, int]:
    """Run the given grid points once each; return how many outcomes each key got in this round."""
    by_key = {s.key: s for s in specs}
    keys = list(by_key)
    searcher = _OptunaSearch(
        space={"trial": optuna.distributions.CategoricalDistribution(keys)},
        metric="val_auc",
        mode="max",
        sampler=optuna.samplers.GridSampler({"trial": keys}, seed=0),
    )

    def lookup(config: dict) -> TrialSpec:
        return by_key[config["trial"]]

    ledger = Ledger(store, lookup, context)
    _fit(study, lookup, data_refs, context, storage, experiment, searcher, None, len(keys), [ledger, *callbacks])
    return ledger.finished


def run_search(
    study: Study,
    category: str,
    start_index: int,
    n_trials: int,
    data_refs: dict[str, Any],
    store: ResultStore,
    context: dict[str, Any],
    storage: str,
    experiment: str,
    callbacks: list,
    earlier: pd.DataFrame,
) -> dict[str, int]:
    """Run `n_trials` searched trials on one category. `earlier`: this category's finished rows, given to the
    sampler as already-evaluated points so a resumed search continues where it stopped."""
    search = study.search
    seeds = study.seeds

    points, rewards = _evaluated(earlier, search.space)
    space = _SearchSpace(search.space, seeds, category, start_index, len(points))

    def lookup(config: dict) -> TrialSpec:
        factors = {k: config[k] for k in search.space}
        spec = spec_for(study, variant_with(study, factors), config["seed"], config["category"])
        return dataclasses.replace(spec, key=f"search#{config['index']:04d}|seed={config['seed']}|{config['category']}")

    sampler = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=search.seed),
        "random": lambda: optuna.samplers.RandomSampler(seed=search.seed),
        "grid": lambda: optuna.samplers.GridSampler(
            {k: list(d.choices) for k, d in search.space.items()}, seed=search.seed
        ),
    }[search.sampler]()
    searcher = _OptunaSearch(
        space=space,
        metric=search.metric,
        mode="max",
        sampler=sampler,
        points_to_evaluate=points or None,
        evaluated_rewards=rewards or None,
    )
    scheduler = None
    if search.scheduler == "asha":
        scheduler = ASHAScheduler(
            time_attr="iteration",  # training iterations, so grace_period is in the study's own units
            metric=search.metric,
            mode="max",
            max_t=10**9,  # trials end on their own; ASHA only cuts poor ones at its rungs
            grace_period=search.grace_period,
            reduction_factor=search.reduction_factor,
        )
    ledger = Ledger(store, lookup, context)
    _fit(study, lookup, data_refs, context, storage, experiment, searcher, scheduler, n_trials, [ledger, *callbacks])
    return ledger.finished


def _fit(study, lookup, data_refs, context, storage, experiment, searcher, scheduler, num_samples, callbacks) -> None:
    resources = study.resources
    # With a searcher Tune keeps one trial pending at a time unless a concurrency limit is set, which serialises
    # trial start-up; so the limit defaults to what the cluster can hold.
    concurrent = resources.max_concurrent or _capacity(resources)
    trainable = tune.with_parameters(run_trial, specs=lookup, data_refs=data_refs, context=context)
    trainable = tune.with_resources(trainable, {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial})
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=num_samples,
            max_concurrent_trials=min(concurrent, num_samples),
            reuse_actors=True,  # a new trial reuses a finished trial's worker: no process start, no re-import
            trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}",
        ),
        run_config=tune.RunConfig(
            name=experiment,
            storage_path=storage,
            failure_config=tune.FailureConfig(max_failures=resources.retries),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=callbacks,
            verbose=0,
        ),
    )
    tuner.fit()


def _capacity(resources) -> int:
    import ray

    available = ray.cluster_resources()
    fits = [available.get("CPU", 1) / resources.cpus_per_trial]
    if resources.gpus_per_trial:
        fits.append(available.get("GPU", 0) / resources.gpus_per_trial)
    return max(1, int(min(fits) + 1e-9))


class _SearchSpace:
    """Define-by-run space for OptunaSearch (a class, not a closure: the searcher is pickled with the experiment).
    Suggests the searched factors and adds constants: the seed (round-robin), the category and the trial's index."""

    def __init__(self, space: dict[str, Dimension], seeds: tuple, category: str, start: int, earlier: int) -> None:
        self.space, self.seeds, self.category, self.start, self.earlier = space, seeds, category, start, earlier

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        for key, dim in self.space.items():
            _suggest(trial, key, dim)
        index = self.start + trial.number - self.earlier  # earlier points are the Optuna study's first trials
        return {"seed": self.seeds[index % len(self.seeds)], "category": self.category, "index": index}


def _suggest(trial: optuna.Trial, key: str, dim: Dimension) -> Any:
    if dim.kind == "choice":
        return trial.suggest_categorical(key, list(dim.choices))
    if dim.kind in ("int", "log_int"):
        return trial.suggest_int(key, int(dim.low), int(dim.high), log=dim.kind == "log_int")
    return trial.suggest_float(key, dim.low, dim.high, log=dim.kind == "log_uniform")


def _evaluated(earlier: pd.DataFrame, space: dict[str, Dimension]) -> tuple[list[dict], list[float]]:
    """Finished rows of an interrupted search, as (points, rewards) for OptunaSearch."""
    if earlier.empty:
        return [], []
    rows = earlier[earlier["status"] == OK]
    points = [{k: _plain(row[column(k)]) for k in space} for _, row in rows.iterrows()]
    return points, [float(v) for v in rows["val_auc"]]


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _error_line(trial) -> str:
    """The last line of the trial's error (its exception type and message), not the whole traceback."""
    text = ""
    # Tune writes the error to the trial's local staging folder before calling back, and copies it to the
    # storage folder only at its next sync: read the local file first, the storage copy only if that is gone.
    local = getattr(trial, "error_file", None)
    if local and Path(local).is_file():
        text = Path(local).read_text(errors="replace")
    if not text.strip():
        try:
            text = trial.get_error() or ""
        except Exception:  # the storage copy may be on an unreachable file system
            text = ""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[-1][:2000] if lines else "trial failed (no error message was recorded)"
