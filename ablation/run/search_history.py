"""A search study's Optuna history, kept in an SQLite file in the output folder (`OUT/optuna.db`): one Optuna study
per category, so that a resumed search continues the same Optuna study and `optuna-dashboard sqlite:///OUT/optuna.db`
shows it while it runs.

The ledger (`trials.parquet`) stays the record of what ran; the Optuna study follows it. Before a run continues a
category, `open_history` makes the two agree: an Optuna trial left running by a killed run gets the outcome its
ledger row recorded (COMPLETE with its val AUC, FAIL, or PRUNED for a trial the scheduler stopped), or FAIL marked
`interrupted` when its row never landed (that trial runs again under its own name); a ledger row the Optuna study
lacks (a history file deleted, or written before this file existed) is added to it. Each Optuna trial carries the
trial's name (`search#NNNN`) and seed as user attributes, so a dashboard user can find its row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import TrialState

from ..results.ledger import OPTUNA_FILE
from ..results.rows import FAILED, OK, STOPPED, plain
from ..study.schema import Dimension, Study, column, search_trial_name, trial_name

TRIAL_ATTR, SEED_ATTR, INTERRUPTED_ATTR = "trial", "seed", "interrupted"
_UNFINISHED = (TrialState.RUNNING, TrialState.WAITING)


@dataclass(frozen=True)
class SearchHistory:
    """Where one category's Optuna study lives, and which trial names the rest of the search takes, in order."""

    storage: optuna.storages.BaseStorage
    study_name: str
    free: tuple[int, ...]  # trial indices (search#NNNN) without a ledger row, in the order new trials take them
    before: int  # Optuna trials in the study before this run: the run's k-th new trial has number before + k


def storage_url(out: Path) -> str:
    return f"sqlite:///{(Path(out) / OPTUNA_FILE).resolve()}"


def history_name(study: Study, category: str) -> str:
    """The Optuna study's name in the file: the study's name and the category."""
    return f"{study.name}/{category}"


def open_history(out: Path, study: Study, category: str, earlier: pd.DataFrame) -> SearchHistory:
    """The category's Optuna study in `OUT/optuna.db`, brought in line with its ledger rows `earlier`. With no rows
    yet the Optuna study starts empty (what an earlier run left without a result is dropped)."""
    # SQLite waits up to 30 s for a lock a reader (optuna-dashboard) holds, instead of failing the write.
    storage = optuna.storages.RDBStorage(storage_url(out), engine_kwargs={"connect_args": {"timeout": 30}})
    name = history_name(study, category)
    if earlier.empty and name in {s.study_name for s in storage.get_all_studies()}:
        optuna.delete_study(study_name=name, storage=storage)
    history = optuna.create_study(storage=storage, study_name=name, direction="maximize", load_if_exists=True)
    _reconcile(history, storage, study.search.space, earlier)
    taken = {trial_name(k) for k in earlier["trial_key"]} if not earlier.empty else set()
    free = tuple(i for i in range(study.search.trials) if search_trial_name(i) not in taken)
    return SearchHistory(storage, name, free, len(history.trials))


def distribution(dim: Dimension) -> optuna.distributions.BaseDistribution:
    """The Optuna distribution a searched factor is suggested from (the same as the driver's `suggest` uses)."""
    if dim.kind == "choice":
        return optuna.distributions.CategoricalDistribution(list(dim.choices))
    if dim.kind in ("int", "log_int"):
        return optuna.distributions.IntDistribution(int(dim.low), int(dim.high), log=dim.kind == "log_int")
    return optuna.distributions.FloatDistribution(float(dim.low), float(dim.high), log=dim.kind == "log_uniform")


def suggest(trial: optuna.Trial, key: str, dim: Dimension) -> object:
    if dim.kind == "choice":
        return trial.suggest_categorical(key, list(dim.choices))
    if dim.kind in ("int", "log_int"):
        return trial.suggest_int(key, int(dim.low), int(dim.high), log=dim.kind == "log_int")
    return trial.suggest_float(key, float(dim.low), float(dim.high), log=dim.kind == "log_uniform")


def _reconcile(
    history: optuna.Study, storage: optuna.storages.BaseStorage, space: dict[str, Dimension], earlier: pd.DataFrame
) -> None:
    rows = {trial_name(row["trial_key"]): row for _, row in earlier.iterrows()}
    study_id = storage.get_study_id_from_name(history.study_name)
    known = set()
    for t in history.get_trials(deepcopy=False):
        name = t.user_attrs.get(TRIAL_ATTR)
        if t.state in _UNFINISHED:
            row = rows.get(name)
            if row is None:
                trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
                storage.set_trial_user_attr(trial_id, INTERRUPTED_ATTR, True)
                history.tell(t.number, state=TrialState.FAIL)
                continue
            state, value = _outcome(row)
            history.tell(t.number, value, state=state)
        if not t.user_attrs.get(INTERRUPTED_ATTR):
            known.add(name)
    dists = {key: distribution(dim) for key, dim in space.items()}
    for name, row in rows.items():
        if name in known:
            continue
        state, value = _outcome(row)
        history.add_trial(
            optuna.trial.create_trial(
                params={key: plain(row[column(key)]) for key in space},
                distributions=dists,
                value=value,
                state=state,
                user_attrs={TRIAL_ATTR: name, SEED_ATTR: int(row["seed"])},
            )
        )


def _outcome(row: pd.Series) -> tuple[TrialState, float | None]:
    """The Optuna state (and value) of a ledger row: its val AUC when it finished with one."""
    value = row.get("val_auc")
    if row["status"] == OK and value is not None and math.isfinite(float(value)):
        return TrialState.COMPLETE, float(value)
    return {OK: TrialState.FAIL, FAILED: TrialState.FAIL, STOPPED: TrialState.PRUNED}[row["status"]], None
