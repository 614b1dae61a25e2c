"""The Ray runner: drive a study's trials through Ray Tune with an Optuna searcher (on the Ray that `session` started or
reached), recording each outcome in the ledger the moment Tune reports it.

Grid and LOCO studies: the trials are enumerated up front, one categorical dimension whose choices are the trial
keys, all enqueued in the order they should start (`longest_first`: the most work first, so short trials fill the
slots at the end) and asked for with `num_samples` = the number of keys exactly, so each key runs once; Optuna's
`GridSampler` stays the sampler, though it is never consulted (enqueued trials come first, and it would re-run
visited points if asked for more). `tune.grid_search` is never used (OptunaSearch rejects it). Search studies: the
named Optuna sampler proposes the searched factors; seeds are not searched but assigned round-robin (a searcher
cannot average over seeds; the report does), an optional ASHA scheduler stops poor trials on `val_auc`, and the
Optuna history lives in the output folder (`search_history`), so a resume continues the same Optuna study.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import pickle
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from ssagan_core.data import CategoryData

from ..results.ledger import LedgerWriteError, ResultStore
from ..results.rows import FAILED, STOPPED, make_row
from ..study.design import TrialSpec, spec_for, variant_with
from ..study.schema import Dimension, Resources, Study, search_trial_name
from .context import RunContext
from .estimate import longest_first
from .progress import StudyView
from .search_history import SEED_ATTR, TRIAL_ATTR, open_history, suggest
from .trainable import GALLERY_PART, HISTORY_PART, ROW_FILE, SCORES_PART, run_trial


def run_grid(
    specs: list[TrialSpec], data: dict[str, CategoryData], store: ResultStore, context: RunContext, view: StudyView
) -> dict[str, int]:
    """Run the given grid points once each; return how many outcomes each key got in this round.

    A trial whose worker was lost (its actor's process or node died: a `RayActorError`, not the trial's own
    exception) is normally retried by Tune (`resources.retries`, from its checkpoint); but when one death reaches Tune
    as two failure events, the second fails the trial already queued for its retry. Such trials run again here, in a
    new Tune experiment of the same round (`<round>-lost-<k>`), while retries are left."""
    by_key = {s.key: s for s in specs}
    refs = {category: ray.put(data[category]) for category in {s.category for s in specs}}
    finished: dict[str, int] = {}
    earlier: dict[str, int] = {}  # attempts spent on a key in this round's earlier experiments
    todo, again = specs, 0
    while True:
        keys = [s.key for s in longest_first(todo, data)]
        searcher = _OptunaSearch(
            space={"trial": optuna.distributions.CategoricalDistribution(keys)},
            metric="val_auc",
            mode="max",
            sampler=optuna.samplers.GridSampler({"trial": keys}, seed=0),
            points_to_evaluate=[{"trial": key} for key in keys],  # started in this order
        )
        ledger = _Ledger(store, lambda config: by_key[config["trial"]], context, view, earlier)
        experiment = context.experiment if again == 0 else f"{context.experiment}-lost-{again}"
        _fit(ledger, refs, context, experiment, searcher, None, len(keys))
        for key, n in ledger.finished.items():
            finished[key] = finished.get(key, 0) + n
        lost = [key for key in keys if key in ledger.lost and ledger.attempts[key] <= context.resources.retries]
        if not lost:
            return finished
        again += 1
        for key in lost:
            finished[key] -= 1  # the failed row is replaced by the next outcome, not a second run of the point
        earlier = {key: ledger.attempts[key] for key in lost}
        view.note(
            f"{len(lost)} trial(s) lost their worker (its process or node died) and were failed by Tune: "
            f"running them again ({experiment} -> {context.experiment}-lost-{again})"
        )
        todo = [by_key[key] for key in lost]


def run_search(
    study: Study, category: str, data: dict[str, CategoryData], store: ResultStore, context: RunContext, view: StudyView
) -> dict[str, int]:
    """Run the rest of one category's search (`search.trials` in all). The sampler works on the category's Optuna
    study in the output folder (`search_history`), so a resumed search continues the same history, and the trials
    that run are exactly the names without a ledger row."""
    search, seeds = study.search, study.seeds
    earlier = store.trials[store.trials["category"] == category] if len(store) else store.trials
    remaining = search.trials - len(earlier)
    if remaining <= 0:
        return {}
    history = open_history(store.out, study, category, earlier)
    space = _SearchSpace(search.space, seeds, category, history.free, history.before)

    def lookup(config: dict) -> TrialSpec:
        factors = {k: config[k] for k in search.space}
        variant = variant_with(study, factors)
        return spec_for(study, variant, config["seed"], config["category"], name=search_trial_name(config["index"]))

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
        study_name=history.study_name,
        storage=history.storage,
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
    ledger = _Ledger(store, lookup, context, view)
    refs = {category: ray.put(data[category])}
    _fit(ledger, refs, context, f"{context.experiment}-{category}", searcher, scheduler, remaining)
    return ledger.finished


# --- Tune and Optuna ------------------------------------------------------------------------------------------


def _fit(
    ledger: _Ledger,
    data_refs: dict[str, ray.ObjectRef],
    context: RunContext,
    experiment: str,
    searcher: OptunaSearch,
    scheduler: ASHAScheduler | None,
    num_samples: int,
) -> None:
    """One Tune experiment: `num_samples` trials proposed by `searcher`, each recorded by `ledger` as it ends."""
    resources = context.resources
    # With a searcher Tune keeps one trial pending at a time unless a concurrency limit is set, which serialises
    # trial start-up; so the limit defaults to what the cluster can hold.
    concurrent = resources.max_concurrent or _capacity(resources)
    trainable = tune.with_parameters(run_trial, specs=ledger.specs, data_refs=data_refs, context=context)
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
            storage_path=context.storage,
            failure_config=tune.FailureConfig(max_failures=resources.retries),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=[ledger],
            verbose=0,
        ),
    )
    ledger.expected = num_samples
    try:
        tuner.fit()
    except Exception:
        if ledger.write_error is not None:  # Tune wraps a callback's exception in its own: give the user ours
            raise ledger.write_error from None
        raise
    finally:
        _REPORT_IMPORTS.join()
    if ledger.write_error is not None:
        raise ledger.write_error


class _ReportImports:
    """The report's imports (SciPy's statistics, scikit-learn's metrics, matplotlib: about 2 s here), started in a
    background thread once every trial of an experiment has started and one has ended. From then on a slot stays
    idle until the round ends, so the imports run on a core no trial uses instead of adding to the report's time
    after the last trial (and to the analysis between adaptive rounds). Once per process."""

    MODULES = ("ablation.report.cli", "sklearn.metrics")

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="report-imports", daemon=True)
            self.thread.start()

    def join(self) -> None:
        """Wait for the imports (the report needs them next; a process must not exit in the middle of one)."""
        if self.thread is not None:
            self.thread.join()

    def _run(self) -> None:
        for module in self.MODULES:
            with contextlib.suppress(Exception):  # a failed import fails again, with its message, where it is used
                importlib.import_module(module)


_REPORT_IMPORTS = _ReportImports()


class _OptunaSearch(OptunaSearch):
    """OptunaSearch that skips progress reports without the metric (val_auc is reported at evaluation points only;
    the stock class indexes every report by the metric and fails the run)."""

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if self.metric in result:
            super().on_trial_result(trial_id, result)


class _Ledger(tune.Callback):
    """Writes each finished, failed or early-stopped trial to the result store the moment Tune reports it, and tells
    the study view."""

    def __init__(
        self,
        store: ResultStore,
        specs: Callable[[dict], TrialSpec],
        context: RunContext,
        view: StudyView,
        earlier: dict[str, int] | None = None,
    ) -> None:
        self.store, self.specs, self.context, self.view = store, specs, context, view
        self.earlier = dict(earlier or {})  # trial key -> attempts spent in earlier experiments of this round
        self.finished: dict[str, int] = {}  # trial key -> outcomes recorded in this round
        self.attempts: dict[str, int] = {}  # trial key -> attempts so far, earlier experiments included
        self.lost: set[str] = set()  # keys whose last attempt failed because its worker was lost
        self.write_error: LedgerWriteError | None = None  # the output folder stopped taking writes: the run stops
        self.expected = 0  # trials in this experiment (`_fit` sets it)
        self.started = 0

    def __getstate__(self) -> dict:  # Tune pickles its callbacks into tuner.pkl; the ledger only lives in-process
        return {"finished": self.finished}

    def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
        self.started += 1
        self.view.started(trial.trial_id)

    def on_step_end(self, iteration: int, trials: list, **info) -> None:
        self.view.refresh()

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        spec = self.specs(trial.config)
        result = trial.last_result or {}
        checkpoint = trial.checkpoint
        if result.get("done") and checkpoint is not None:
            with checkpoint.as_directory() as d:
                d = Path(d)
                row = json.loads((d / ROW_FILE).read_text())
                # a retried trial that then succeeded says so
                row["attempts"] = self.earlier.get(spec.key, 0) + trial.num_failures + 1
                gallery = (d / GALLERY_PART).read_bytes() if (d / GALLERY_PART).exists() else None
                scores, history = pd.read_parquet(d / SCORES_PART), pd.read_parquet(d / HISTORY_PART)
                self._record(spec, row, scores, history, gallery)
            return
        # Stopped early by the scheduler (search studies only): keep what it reported.
        metrics = {"val_auc": result.get("val_auc", math.nan)}
        self._record(spec, make_row(spec, self.context, STOPPED, metrics, trial_id=trial.trial_id))

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        spec = self.specs(trial.config)
        # every attempt failed, the last with `error`
        error, attempts = _error_line(trial), self.earlier.get(spec.key, 0) + trial.num_failures
        self.attempts[spec.key] = attempts
        if _worker_lost(trial):
            self.lost.add(spec.key)
        self._record(
            spec, make_row(spec, self.context, FAILED, error=error, trial_id=trial.trial_id, attempts=attempts)
        )

    def _record(self, spec: TrialSpec, row: dict, scores=None, history=None, gallery=None) -> None:
        try:
            self.store.add(row, scores, history, gallery)
        except LedgerWriteError as e:
            self.write_error = e
            raise
        self.finished[spec.key] = self.finished.get(spec.key, 0) + 1
        self.view.finished(row)
        if self.expected and self.started >= self.expected:  # every trial has started and a slot is now idle
            _REPORT_IMPORTS.start()


class _SearchSpace:
    """Define-by-run space for OptunaSearch (a class, not a closure: the searcher is pickled with the experiment).
    Suggests the searched factors and adds constants: the trial's index (the next free name), its seed (round-robin
    by index) and the category; the name and seed also go to the Optuna trial, for the dashboard."""

    def __init__(
        self, space: dict[str, Dimension], seeds: tuple, category: str, free: tuple[int, ...], before: int
    ) -> None:
        self.space, self.seeds, self.category, self.free, self.before = space, seeds, category, free, before

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        for key, dim in self.space.items():
            suggest(trial, key, dim)
        # Only this run adds trials to the Optuna study (it holds the output folder's lock), so the run's k-th
        # trial has number before + k and takes the k-th free name.
        index = self.free[trial.number - self.before]
        seed = self.seeds[index % len(self.seeds)]
        trial.set_user_attr(TRIAL_ATTR, search_trial_name(index))
        trial.set_user_attr(SEED_ATTR, seed)
        return {"seed": seed, "category": self.category, "index": index}


def _capacity(resources: Resources) -> int:
    available = ray.cluster_resources()
    fits = [available.get("CPU", 1) / resources.cpus_per_trial]
    if resources.gpus_per_trial:
        fits.append(available.get("GPU", 0) / resources.gpus_per_trial)
    return max(1, int(min(fits) + 1e-9))


def next_round(storage: str | None) -> str:
    """The experiment name of a new run over this storage: round-1, round-2, ... (a resume adds a round)."""
    if storage is None or "://" in storage or not Path(storage).exists():
        return "round-1"
    rounds = [int(p.name.split("-")[1]) for p in Path(storage).glob("round-*") if p.name.split("-")[1].isdigit()]
    return f"round-{max(rounds, default=0) + 1}"


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


def _worker_lost(trial) -> bool:
    """Whether the trial's last failure was its worker's death (a `RayActorError`: the actor's process or node died),
    not an exception of the trial's own. Tune pickles the error beside the text one, in the trial's local folder."""
    path = getattr(trial, "pickled_error_file", None)
    if not path or not trial.run_metadata.pickled_error_filename:
        return False
    try:
        with Path(path).open("rb") as f:
            error = pickle.load(f)
    except Exception:  # no such file, or an error that cannot be unpickled here: not known to be a lost worker
        return False
    return isinstance(error, ray.exceptions.RayActorError)
