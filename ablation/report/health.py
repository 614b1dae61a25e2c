"""Trained enough, and pointing the right way? Per variant and category: the test AUC of each part of the score (the
score as ranked, and a skip model's reconstruction and latent errors alone) and three flags that change what a verdict
means: AUC below 0.5, a wide seed spread, and training still improving when it stopped. `assess` computes it for
`Analysis.health`; `variant_flags` gives each variant's flags in a few words, for a verdict's line."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..results.rows import OK, SCORE_PARTS
from .factors import describe_design

PARTS = ("score", *SCORE_PARTS)  # the score as ranked and thresholded, then its parts (skip models)
SPREAD_LIMIT = 0.1  # max - min of test AUC over seeds, within a variant and category
LAST = 0.2  # "the end of training": its last fifth
# Still improving: the final val AUC above the best before the last fifth by more than this. Against the best of
# several earlier points, noise on a plateau rarely passes (a 40-image val AUC wobbles by about 0.05).
VAL_GAIN = 0.02
CTX_FALL = 0.10  # without val AUC points: the ctx loss fell by more than this fraction into the last fifth
SHOWN_CATEGORIES = 3  # a flag names at most this many categories, else counts them

BELOW_HALF, IMPROVING = "AUC < 0.5", "still improving"
VAL_SIGNAL, CTX_SIGNAL = "val AUC", "ctx loss"

RULE = (
    f"Still improving: the final val AUC is more than {VAL_GAIN} above the best val AUC before the last fifth of "
    f"training (median over seeds); a trial without val AUC points during training (`train.eval_every`: 0) is judged "
    f"on the contextual loss instead, flagged when its mean over the last fifth is more than {CTX_FALL:.0%} below its "
    f"mean over the fifth before. The trend column names the signal used."
)


@dataclass(frozen=True)
class Health:
    """Per trial and per variant x category (study order): part AUCs, spread, trend and flags."""

    # per trial: trial_key, variant, category, seed, auc_<part> (test AUC of each part), val_<part> (its validation
    # AUC), signal, change
    trials: pd.DataFrame
    # per variant x category: seeds, auc_<part>_mean / _std, val_<part>_mean / _std, spread (max - min), signal,
    # change, improving, flags
    table: pd.DataFrame
    notes: list[str] = field(default_factory=list)  # what could not be computed, and why


def assess(ok: pd.DataFrame, scores: pd.DataFrame, history: pd.DataFrame, order: Iterable[str] = ()) -> Health:
    """Health of the successful trials `ok` (the analysis' prepared rows) from the per-image scores and histories."""
    notes = []
    ok = ok.reset_index(drop=True)
    trials = ok[["trial_key", "variant", "category", "seed"]].copy()
    parts = part_aucs(scores)
    if parts.empty:
        notes.append("no per-image test scores (scores.parquet missing or empty): AUC from trials.parquet, no parts")
    val_parts = part_aucs(scores, split="val")
    for part in PARTS:
        column = f"auc_{part}"
        trials[column] = trials["trial_key"].map(parts[column]) if column in parts else np.nan
        trials[f"val_{part}"] = trials["trial_key"].map(val_parts[column]) if column in val_parts else np.nan
    # The trial's own test AUC wherever its scores are missing (an older folder): the same number.
    trials["auc_score"] = trials["auc_score"].fillna(pd.to_numeric(ok["auc"], errors="coerce"))
    usable = not history.empty and {"trial_key", "iteration"} <= set(history.columns)
    histories = dict(tuple(history.groupby("trial_key", sort=False))) if usable else {}
    if not histories:
        notes.append("no training history (history.parquet missing or empty): no trend")
    trends = [_trend(histories.get(row["trial_key"]), row) for _, row in ok.iterrows()]
    trials["signal"] = [t[0] for t in trends]
    trials["change"] = [t[1] for t in trends]
    return Health(trials, _table(trials, list(order)), notes)


def part_aucs(scores: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """AUC on `split` (`test`, or `val`: normal images and synthetic defects) of each part of the score per trial
    (index trial_key, columns auc_<part>; NaN for an absent part)."""
    if scores.empty or not {"trial_key", "split", "label", "score"} <= set(scores.columns):
        return pd.DataFrame()
    from sklearn.metrics import roc_auc_score

    out = {}
    for key, g in scores[scores["split"] == split].groupby("trial_key", sort=False):
        aucs = {}
        for part in PARTS:
            values = pd.to_numeric(g[part], errors="coerce") if part in g else pd.Series(np.nan, g.index)
            keep = np.isfinite(values.to_numpy(dtype="float64"))
            labels = g["label"][keep]
            aucs[f"auc_{part}"] = roc_auc_score(labels, values[keep]) if labels.nunique() == 2 else np.nan
        out[key] = aucs
    return pd.DataFrame.from_dict(out, orient="index")


def _trend(h: pd.DataFrame | None, trial: pd.Series) -> tuple[str, float]:
    """(signal, change) of one trial over the last fifth of its training: the val AUC gain (final minus the best
    before the last fifth), else the ctx loss's fall (a fraction of its mean over the fifth before); ("", NaN) when
    neither is there."""
    if h is None or h.empty:
        return "", math.nan
    h = h.sort_values("iteration")
    iterations = pd.to_numeric(pd.Series([trial.get("iterations", np.nan)]), errors="coerce").iloc[0]
    total = float(iterations) if np.isfinite(iterations) else float(h["iteration"].max())
    cut = (1 - LAST) * total
    during = h[np.isfinite(h["val_auc"].astype("float64"))] if "val_auc" in h else h.iloc[:0]
    if len(during):  # val AUC points during training; without them, the losses
        points = during[["iteration", "val_auc"]]
        final = pd.to_numeric(pd.Series([trial.get("val_auc", np.nan)]), errors="coerce").iloc[0]
        if np.isfinite(final):  # the final validation is recorded in the trial's row, not its history
            points = pd.concat([points, pd.DataFrame({"iteration": [total], "val_auc": [final]})], ignore_index=True)
        before, last = points[points["iteration"] <= cut], points[points["iteration"] > cut]
        if len(before) and len(last):
            return VAL_SIGNAL, float(last.sort_values("iteration")["val_auc"].iloc[-1] - before["val_auc"].max())
    if "ctx" not in h:
        return "", math.nan
    # Each report holds the mean loss since the previous one: weigh it by the iterations it covers.
    weights = h["iteration"].diff().fillna(h["iteration"]).to_numpy(dtype="float64")
    ctx = pd.to_numeric(h["ctx"], errors="coerce").to_numpy(dtype="float64")
    it = h["iteration"].to_numpy(dtype="float64")
    earlier = (it > cut - LAST * total) & (it <= cut) & np.isfinite(ctx)
    last = (it > cut) & np.isfinite(ctx)
    if not earlier.any() or not last.any():
        return "", math.nan
    before = np.average(ctx[earlier], weights=weights[earlier])
    after = np.average(ctx[last], weights=weights[last])
    if not before > 0:
        return "", math.nan
    return CTX_SIGNAL, float(1 - after / before)


def _table(trials: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """One row per variant x category, variants in study order, categories in order of appearance."""
    variants = [v for v in order if v in set(trials["variant"])]
    variants += [v for v in dict.fromkeys(trials["variant"]) if v not in variants]
    categories = list(dict.fromkeys(trials["category"]))
    out = []
    for variant in variants:
        for category in categories:
            g = trials[(trials["variant"] == variant) & (trials["category"] == category)]
            if g.empty:
                continue
            out.append(_cell(variant, category, g))
    return pd.DataFrame(out)


def _cell(variant: str, category: str, g: pd.DataFrame) -> dict[str, Any]:
    row: dict[str, Any] = {"variant": variant, "category": category, "seeds": int(g["seed"].nunique())}
    for part in PARTS:
        for prefix in ("auc", "val"):
            values = g[f"{prefix}_{part}"].dropna()
            row[f"{prefix}_{part}_mean"] = values.mean() if len(values) else np.nan
            row[f"{prefix}_{part}_std"] = values.std(ddof=1) if len(values) > 1 else np.nan
    auc = g["auc_score"].dropna()
    row["spread"] = float(auc.max() - auc.min()) if len(auc) > 1 else np.nan
    signals = g.loc[g["signal"] != "", "signal"]
    row["signal"] = signals.mode().iloc[0] if len(signals) else ""
    change = g.loc[g["signal"] == row["signal"], "change"].dropna()
    # The median over seeds: one seed's late jump (or collapse) does not decide.
    row["change"] = float(change.median()) if row["signal"] and len(change) else np.nan
    limit = VAL_GAIN if row["signal"] == VAL_SIGNAL else CTX_FALL
    row["improving"] = bool(np.isfinite(row["change"]) and row["change"] > limit)
    flags = []
    if np.isfinite(row["auc_score_mean"]) and row["auc_score_mean"] < 0.5:
        flags.append(BELOW_HALF)
    if np.isfinite(row["spread"]) and row["spread"] > SPREAD_LIMIT:
        flags.append(f"spread {row['spread']:.2f}")
    if row["improving"]:
        flags.append(IMPROVING)
    row["flags"] = flags
    return row


def variant_flags(source: Any) -> dict[str, list[str]]:
    """Each variant's flags in a few words ("AUC < 0.5", "spread 0.14", "still improving"), naming the categories
    when the study has several. `source`: an `Analysis`, its `Health`, or a loaded `Results` folder."""
    health = _health_of(source)
    table = health.table
    if table.empty:
        return {}
    several = table["category"].nunique() > 1
    out: dict[str, list[str]] = {}
    for variant, g in table.groupby("variant", sort=False):
        words = []
        below = g.loc[[BELOW_HALF in f for f in g["flags"]], "category"].tolist()
        if below:
            words.append(BELOW_HALF + _where(below, several))
        wide = g[g["spread"] > SPREAD_LIMIT]
        if len(wide):
            words.append(f"spread {wide['spread'].max():.2f}" + _where(wide["category"].tolist(), several))
        improving = g.loc[g["improving"], "category"].tolist()
        if improving:
            words.append(IMPROVING + _where(improving, several))
        out[str(variant)] = words
    return out


def _where(categories: list[str], several: bool) -> str:
    if not several:
        return ""
    if len(categories) > SHOWN_CATEGORIES:
        return f" ({len(categories)} categories)"
    return f" ({', '.join(categories)})"


def _health_of(source: Any) -> Health:
    if isinstance(source, Health):
        return source
    if hasattr(source, "health"):
        return source.health
    # A loaded `Results`: its successful trials, variants in the study's order (as `analyse` prepares them).
    trials = source.trials.astype({"variant": str, "category": str})
    ok = trials[trials["status"] == OK]
    for column in ("auc", "val_auc", "iterations"):
        if column in ok:
            ok = ok.assign(**{column: pd.to_numeric(ok[column], errors="coerce")})
    return assess(ok, source.scores, source.history, describe_design(source.study, trials).order)
