"""Parameter importances of a `search:` study: the finished trials are put back into an in-memory Optuna study and
scored with Optuna's fANOVA evaluator, named explicitly (Optuna 5 changed the default evaluator, so an unnamed one
would give different numbers under different Optuna versions)."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pandas as pd

from ..results.rows import OK, plain
from ..study.schema import Dimension, column

MIN_TRIALS = 3  # fANOVA fits a random forest on the trials: with fewer, the importances are noise
EVALUATOR = "fANOVA (optuna.importance.FanovaImportanceEvaluator, seed 0)"


def distributions(space: dict[str, Dimension]) -> dict[str, optuna.distributions.BaseDistribution]:
    """Column -> Optuna distribution, from the study's `search.space`."""
    out: dict[str, optuna.distributions.BaseDistribution] = {}
    for key, dim in space.items():
        if dim.kind == "choice":
            out[column(key)] = optuna.distributions.CategoricalDistribution(list(dim.choices))
        elif dim.kind in ("int", "log_int"):
            out[column(key)] = optuna.distributions.IntDistribution(
                int(dim.low), int(dim.high), log=dim.kind == "log_int"
            )
        else:
            out[column(key)] = optuna.distributions.FloatDistribution(
                float(dim.low), float(dim.high), log=dim.kind == "log_uniform"
            )
    return out


def inferred_distributions(rows: pd.DataFrame, columns: list[str]) -> dict[str, optuna.distributions.BaseDistribution]:
    """Distributions spanning the values seen, for a search whose study file is missing."""
    out: dict[str, optuna.distributions.BaseDistribution] = {}
    for name in columns:
        values = rows[name].dropna()
        if values.empty:
            continue
        if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
            out[name] = optuna.distributions.CategoricalDistribution(sorted(values.unique().tolist(), key=str))
        elif pd.api.types.is_integer_dtype(values):
            out[name] = optuna.distributions.IntDistribution(int(values.min()), int(values.max()))
        else:
            low, high = float(values.min()), float(values.max())
            log = low > 0 and high / low > 100  # a range spanning decades was surely sampled on a log scale
            out[name] = optuna.distributions.FloatDistribution(low, max(high, np.nextafter(low, math.inf)), log=log)
    return out


def rebuild_study(rows: pd.DataFrame, dists: dict[str, optuna.distributions.BaseDistribution]) -> optuna.Study:
    """An in-memory Optuna study holding the finished trials (params from the row's columns, value = val_auc)."""
    study = optuna.create_study(direction="maximize")
    trials = []
    for _, row in rows.iterrows():
        params = {c: plain(row[c]) for c in dists}
        trials.append(optuna.trial.create_trial(params=params, distributions=dists, value=float(row["val_auc"])))
    study.add_trials(trials)
    return study


def param_importances(
    rows: pd.DataFrame, dists: dict[str, optuna.distributions.BaseDistribution]
) -> tuple[dict[str, float], str]:
    """(parameter -> importance, summing to 1; "" or why there are none). `rows`: one category's trials; only those
    that finished with a finite val_auc count (early-stopped trials were scored at an earlier iteration)."""
    done = rows[(rows["status"] == OK) & np.isfinite(rows["val_auc"].astype("float64"))]
    if len(done) < MIN_TRIALS:
        return {}, f"{len(done)} finished trials with a val AUC: importances need at least {MIN_TRIALS}"
    if not dists:
        return {}, "no searched parameters"
    if done["val_auc"].nunique() < 2:
        return {}, "every finished trial has the same val AUC: nothing to attribute"
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created in memory" line per category
    try:
        study = rebuild_study(done, dists)
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        return dict(optuna.importance.get_param_importances(study, evaluator=evaluator)), ""
    except (ValueError, RuntimeError) as e:
        return {}, f"importances could not be computed ({type(e).__name__}: {e})"
    finally:
        optuna.logging.set_verbosity(verbosity)
