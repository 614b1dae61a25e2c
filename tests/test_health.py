"""The report's health check on hand-built result folders with known answers: the AUC of each part of the score,
the AUC < 0.5 and seed-spread flags, the still-improving rule (on val AUC, and on the ctx loss without val AUC
points), `variant_flags` for the lead's verdict lines, and an old folder without scores or history."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ablation.report.cli import render_report
from ablation.report.health import BELOW_HALF, CTX_SIGNAL, IMPROVING, VAL_SIGNAL, Health, variant_flags
from ablation.report.render_health import health_section
from ablation.results.ledger import load_results

from .test_report import grid_rows, grid_study, page, row, write_results

ATTENTION = {"grid": {"model.attention": [True, False]}}


def cell(out: Path, variant: str, category: str = "nut") -> pd.Series:
    table = page(out).health.table
    return table[(table["variant"] == variant) & (table["category"] == category)].iloc[0]


def write_scores(out: Path, parts: dict[str, callable], splits: tuple[str, ...] = ("test",)) -> None:
    """scores.parquet for every successful trial: 6 normal and 6 defective images per split; `parts[name](labels)`."""
    trials = pd.read_parquet(out / "trials.parquet")
    labels = np.array([0] * 6 + [1] * 6)
    frames = [
        pd.DataFrame(
            {
                "trial_key": key,
                "trial_id": "t",
                "split": split,
                "path": [f"{split}/{i}" for i in range(12)],
                "label": labels,
                "defect": np.where(labels == 1, "scratch", "good"),
                **{name: make(labels) for name, make in parts.items()},
            }
        )
        for key in trials.loc[trials["status"] == "ok", "trial_key"]
        for split in splits
    ]
    pd.concat(frames).to_parquet(out / "scores.parquet", index=False)


def write_history(out: Path, curves: dict[str, dict[str, list]], iterations: int = 20) -> None:
    """history.parquet: per variant, columns over reports at every fifth of `iterations`/5 (4, 8, ..., 20)."""
    trials = pd.read_parquet(out / "trials.parquet")
    frames = []
    for key, variant in zip(trials["trial_key"], trials["variant"], strict=True):
        columns = curves[variant]
        frames.append(
            pd.DataFrame(
                {
                    "trial_key": key,
                    "trial_id": "t",
                    "iteration": np.linspace(iterations / 5, iterations, 5).astype(int),
                    "seconds": [1.0, 2, 3, 4, 5],
                    "loss_g": 1.0,
                    "loss_d": 1.0,
                    "adv": 0.7,
                    "lat": 0.1,
                    **columns,
                }
            )
        )
    pd.concat(frames).to_parquet(out / "history.parquet", index=False)


# --- part AUCs ------------------------------------------------------------------------------------------------


def test_rec_ranks_perfectly_while_lat_is_inverted(tmp_path):
    """rec = the label (perfect), lat = minus the label (inverted), the score their mix: rec 1.0, lat 0.0."""
    rows = [row("base", s, "nut", 0.8) for s in range(2)]
    out = write_results(tmp_path, rows, None)
    write_scores(
        out,
        {
            "score": lambda y: 0.9 * y - 0.1 * y + np.linspace(0, 0.1, 12),
            "rec": lambda y: y + np.linspace(0, 0.1, 12),
            "lat": lambda y: -y + np.linspace(0, 0.1, 12),
        },
    )
    c = cell(out, "base")
    assert c["auc_score_mean"] == 1.0 and c["auc_rec_mean"] == 1.0 and c["auc_lat_mean"] == 0.0
    assert c["auc_rec_std"] == 0.0 and c["flags"] == []
    text = "\n".join(health_section(page(out)))
    assert "| `base` | nut | 1.000 ± 0.000 | 1.000 ± 0.000 | 0.000 ± 0.000 |" in text
    assert "A part alone below 0.5 points the wrong way" in text


def test_the_maps_maximum_is_a_part_of_its_own(tmp_path):
    """Scores with `rec_max` (skip models since `model.score_reduce`) get a `rec max alone` column between rec and lat;
    a ledger written before it (no such column, as above) shows none."""
    rows = [row("base", s, "nut", 0.8) for s in range(2)]
    out = write_results(tmp_path, rows, None)
    write_scores(
        out,
        {
            "score": lambda y: y + np.linspace(0, 0.1, 12),
            "rec": lambda y: -y + np.linspace(0, 0.1, 12),
            "rec_max": lambda y: y + np.linspace(0, 0.1, 12),
            "lat": lambda y: y + np.linspace(0, 0.1, 12),
        },
        splits=("test", "val"),
    )
    c = cell(out, "base")
    assert c["auc_rec_mean"] == 0.0 and c["auc_rec_max_mean"] == 1.0
    text = "\n".join(health_section(page(out)))
    assert "| variant | category | AUC (score) | rec alone | rec max alone | lat alone |" in text
    assert "| `base` | nut | 1.000 ± 0.000 | 0.000 ± 0.000 | 1.000 ± 0.000 | 1.000 ± 0.000 |" in text
    # the validation table: the same parts on the val split (written with the same ranking here)
    assert c["val_rec_mean"] == 0.0 and c["val_rec_max_mean"] == 1.0
    assert "Validation AUC of the same parts" in text
    assert text.count("| variant | category | AUC (score) | rec alone | rec max alone | lat alone |") == 2


def test_models_without_parts_get_no_part_columns(tmp_path):
    """A model whose scores have NaN rec and lat (not a skip model): NaN part AUCs, no rec/lat columns."""
    rows = [row("base", s, "nut", 0.8, model="anogan") for s in range(2)]
    out = write_results(tmp_path, rows, None)
    write_scores(out, {"score": lambda y: y * 1.0, "rec": lambda y: np.full(12, np.nan), "lat": lambda y: np.nan * y})
    c = cell(out, "base")
    assert c["auc_score_mean"] == 1.0 and math.isnan(c["auc_rec_mean"]) and math.isnan(c["auc_lat_mean"])
    text = "\n".join(health_section(page(out)))
    assert "| variant | category | AUC (score) | spread (max - min) | trend | flags |" in text


# --- flags ----------------------------------------------------------------------------------------------------


def test_auc_below_half_is_flagged(tmp_path):
    """attention on ranks defects as normal in nut (mean 0.40), fine in wood: flagged there only."""
    rows = grid_rows(
        lambda f, s, c: 0.4 if f["attention"] and c == "nut" else 0.8, {"attention": [True, False]}, seeds=(0, 1)
    )
    out = write_results(tmp_path, rows, grid_study(ATTENTION, seeds=(0, 1)))
    assert cell(out, "attention=true")["flags"] == [BELOW_HALF]
    assert cell(out, "attention=true", "wood")["flags"] == []
    assert variant_flags(page(out)) == {"attention=true": [f"{BELOW_HALF} (nut)"], "attention=false": []}
    text = render_report(out).read_text()
    assert "**AUC < 0.5**: the model ranks defects as more normal" in text
    assert "**spread**" not in text and "**still improving**" not in text


def test_seed_spread_above_a_tenth_is_flagged(tmp_path):
    """Seeds 0.60 / 0.75 (max - min 0.15) are flagged; 0.60 / 0.65 are not."""
    rows = grid_rows(
        lambda f, s, c: 0.6 + s * (0.15 if f["attention"] else 0.05), {"attention": [True, False]}, seeds=(0, 1)
    )
    out = write_results(tmp_path, rows, grid_study(ATTENTION, seeds=(0, 1)))
    assert cell(out, "attention=true")["spread"] == pytest.approx(0.15)
    assert cell(out, "attention=true")["flags"] == ["spread 0.15"]
    assert cell(out, "attention=false")["flags"] == []
    assert variant_flags(page(out)) == {"attention=true": ["spread 0.15 (nut, wood)"], "attention=false": []}
    assert "**spread** (max - min of test AUC over seeds" in render_report(out).read_text()


def test_rising_val_auc_is_still_improving_and_a_flat_one_is_not(tmp_path):
    """Final val AUC (in the trial's row) 0.95 after 0.60-0.85 is still improving (+0.10); a flat curve is not."""
    rows = [row("rising", s, "nut", 0.8, val_auc=0.95) for s in range(2)]
    rows += [row("flat", s, "nut", 0.8, val_auc=0.81) for s in range(2)]
    out = write_results(tmp_path, rows, None)
    write_history(
        out,
        {
            "rising": {"ctx": 0.5, "val_auc": [0.6, 0.7, 0.8, 0.85, math.nan]},
            "flat": {"ctx": 0.5, "val_auc": [0.8, 0.82, 0.8, 0.81, math.nan]},
        },
    )
    rising, flat = cell(out, "rising"), cell(out, "flat")
    assert rising["signal"] == VAL_SIGNAL and rising["change"] == pytest.approx(0.10)
    assert rising["flags"] == [IMPROVING]
    assert flat["signal"] == VAL_SIGNAL and flat["change"] == pytest.approx(-0.01) and flat["flags"] == []
    assert variant_flags(page(out)) == {"rising": [IMPROVING], "flat": []}
    text = render_report(out).read_text()
    assert "+0.100 val AUC" in text and "**still improving**: training stopped before it converged" in text


def test_one_seeds_late_jump_does_not_flag_the_variant(tmp_path):
    """The median over seeds decides: one of three seeds jumping at the end is not "still improving"."""
    rows = [row("base", s, "nut", 0.8, val_auc=v) for s, v in enumerate((0.95, 0.80, 0.80))]
    out = write_results(tmp_path, rows, None)
    write_history(out, {"base": {"ctx": 0.5, "val_auc": [0.8, 0.8, 0.8, 0.8, math.nan]}})
    c = cell(out, "base")
    assert c["change"] == pytest.approx(0.0) and not c["improving"]


def test_without_val_auc_points_the_ctx_loss_decides(tmp_path):
    """No eval points: ctx falling from 1.0 to 0.5 in the last fifth is still improving; a flat ctx is not."""
    rows = [row("falling", s, "nut", 0.8) for s in range(2)] + [row("flat", s, "nut", 0.8) for s in range(2)]
    out = write_results(tmp_path, rows, None)
    write_history(
        out,
        {
            "falling": {"ctx": [2.0, 1.5, 1.2, 1.0, 0.5], "val_auc": math.nan},
            "flat": {"ctx": [2.0, 1.0, 0.6, 0.5, 0.49], "val_auc": math.nan},
        },
    )
    falling, flat = cell(out, "falling"), cell(out, "flat")
    assert falling["signal"] == CTX_SIGNAL and falling["change"] == pytest.approx(0.5) and falling["improving"]
    assert flat["signal"] == CTX_SIGNAL and flat["change"] == pytest.approx(0.02) and not flat["improving"]
    text = render_report(out).read_text()
    assert "-50% ctx loss" in text and "Judged on the ctx loss" in text


def test_variant_flags_takes_an_analysis_its_health_or_a_results_folder(tmp_path):
    rows = grid_rows(lambda f, s, c: 0.4 if f["attention"] else 0.6 + 0.2 * s, {"attention": [True, False]})
    out = write_results(tmp_path, rows, grid_study(ATTENTION))
    a = page(out)
    assert isinstance(a.health, Health)
    expected = {"attention=true": [BELOW_HALF + " (nut, wood)"], "attention=false": ["spread 0.40 (nut, wood)"]}
    assert variant_flags(a) == variant_flags(a.health) == variant_flags(load_results(out)) == expected


# --- old folders ----------------------------------------------------------------------------------------------


def test_a_folder_without_scores_or_history_still_renders(tmp_path):
    """An older folder (trials.parquet alone): the AUC from the trials, no parts, no trend, and it says why."""
    rows = grid_rows(lambda f, s, c: 0.7, {"attention": [True, False]}, seeds=(0, 1))
    out = write_results(tmp_path, rows, grid_study(ATTENTION, seeds=(0, 1)))
    assert not (out / "scores.parquet").exists() and not (out / "history.parquet").exists()
    c = cell(out, "attention=true")
    assert c["auc_score_mean"] == pytest.approx(0.7) and c["signal"] == "" and c["flags"] == []
    text = render_report(out).read_text()
    assert "## Trained enough, and pointing the right way?" in text
    assert "| `attention=true` | nut | 0.700 ± 0.000 | 0.00 | — | — |" in text
    assert "no per-image test scores" in text and "no training history" in text and "No flag raised." in text
