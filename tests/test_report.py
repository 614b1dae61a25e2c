"""The report renderer on hand-built result folders: statistics against known answers, design handling (grid,
factorial, LOCO, search), robustness (failed, missing, single seed, no study.yaml), figures, links, the paper's
tables and the command line. No training: every Parquet file here is built by the helpers below."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from ablation.report.analysis import Analysis, analyse
from ablation.report.cli import REPORT_FILE, main, render_report
from ablation.report.importance import EVALUATOR, distributions, param_importances
from ablation.report.paper import compare, load_paper_tables
from ablation.report.render import FigureWriter, category_section
from ablation.report.render_paper import paper_section
from ablation.report.render_search import importance_section
from ablation.report.stats import HELPS, HURTS, NO_EVIDENCE, grid_effects, interactions, loco_effects, summarize
from ablation.results.ledger import load_results
from ablation.study.schema import Study

# --- builders -------------------------------------------------------------------------------------------------

PAPER_SETTINGS = {
    "ssagan": {"attention": True, "conv": "dsc", "down": "maxpool", "up": "bilinear", "w": (0.5, 0.3, 0.2)},
    "skip_ganomaly": {"attention": False, "conv": "standard", "down": "strided", "up": "transposed", "w": (1, 50, 1)},
    "ganomaly": {"attention": False, "conv": "standard", "down": "strided", "up": "transposed", "w": (1, 50, 1)},
    "anogan": {"attention": False, "conv": "standard", "down": "strided", "up": "transposed", "w": (1, 0, 0)},
}


def row(variant: str, seed: int, category: str, auc: float, **settings) -> dict:
    """One trials.parquet row with every column of the runner's schema; `settings` override the defaults."""
    model = settings.pop("model", "ssagan")
    preset = PAPER_SETTINGS[model]
    status = settings.pop("status", "ok")
    out = {
        "study": "hand",
        "trial_key": f"{variant}|seed={seed}|{category}",
        "trial_id": f"t{seed}{category}{abs(hash(variant)) % 1000}",
        "variant": variant,
        "seed": seed,
        "dataset": "synthetic",
        "category": category,
        "design": "grid",
        "model": model,
        "image_size": 32,
        "attention": preset["attention"],
        "attention_kv_pool": 1,
        "conv": preset["conv"],
        "down": preset["down"],
        "up": preset["up"],
        "w_adv": float(preset["w"][0]),
        "w_ctx": float(preset["w"][1]),
        "w_lat": float(preset["w"][2]),
        "score_lambda": 0.9,
        "score_reduce": "mean",
        "base_channels": 4,
        "max_channels": 16,
        "depth": 5,
        "ndf": 4,
        "nz": 8,
        "anogan_steps": 5,
        "anogan_lambda": 0.1,
        "attention_stages": "all",
        "iterations": 20,
        "batch_size": 4,
        "lr": 2e-4,
        "lr_schedule": "constant",
        "beta1": 0.5,
        "beta2": 0.999,
        "input_noise": 0.0,
        "reinit_d_below": 1e-5,
        "threshold_rule": "val_quantile",
        "threshold_quantile": 0.95,
        "eval_every": 10,
        "log_every": 5,
        "score_batch_size": 64,
        "channels_last": True,
        "amp": False,
        "compile": False,
        "status": status,
        "error": "",
        "auc": auc,
        "aupr": auc,
        "accuracy": 0.7,
        "precision": 0.6,
        "recall": 0.8,
        "f1": 0.69,
        "f1_max": 0.8,
        "threshold": 0.3,
        "threshold_rule_used": "val_quantile",
        "val_auc": auc - 0.01,
        "train_seconds": 2.0,
        "score_seconds": 0.2,
        "images_per_second": 40.0,
        "params_generator": 30000,
        "params_discriminator": 5000,
        "d_reinits": 0,
        "n_train": 22,
        "n_val": 4,
        "n_test": 10,
        "final_loss_g": 0.5,
        "final_loss_d": 1.3,
        "final_adv": 0.7,
        "final_ctx": 0.5,
        "final_lat": 0.05,
        "node": "n1",
        "host": "vm",
        "device": "cpu",
        "started_at": f"2026-01-01T00:{seed:02d}:00+00:00",
        "finished_at": f"2026-01-01T00:{seed:02d}:30+00:00",
        "code_version": "0.1.0+gtest",
        "cpus": 1,
        "gpus": 0,
    }
    out.update(settings)
    if status != "ok":
        for m in ("auc", "aupr", "accuracy", "precision", "recall", "f1", "f1_max", "val_auc", "train_seconds"):
            out[m] = math.nan
    return out


def grid_rows(auc, levels: dict[str, list], seeds=(0, 1, 2), categories=("nut", "wood"), **settings) -> list[dict]:
    """Every variant x seed x category of a grid; `auc(values, seed, category)` gives the AUC."""
    import itertools

    rows = []
    for values in itertools.product(*levels.values()):
        factors = dict(zip(levels, values, strict=True))
        variant = ",".join(f"{k}={_fmt(v)}" for k, v in factors.items())
        for seed in seeds:
            for category in categories:
                rows.append(row(variant, seed, category, auc(factors, seed, category), **factors, **settings))
    return rows


def _fmt(v) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def base_auc(seed: int, category: str) -> float:
    """A per-cell baseline that differs between seeds and categories, as real runs do."""
    return 0.6 + 0.05 * seed + (0.1 if category == "wood" else 0.0)


def write_results(
    out: Path, rows: list[dict], study: dict | None = None, scores: bool = False, history: bool = False
) -> Path:
    """A study output folder: trials.parquet (+ scores, history, study.yaml)."""
    out.mkdir(parents=True, exist_ok=True)
    trials = pd.DataFrame(rows)
    trials.to_parquet(out / "trials.parquet", index=False)
    ok = trials[trials["status"] == "ok"]
    if scores:
        parts = []
        for key, auc in zip(ok["trial_key"], ok["auc"], strict=True):
            rng = np.random.default_rng(abs(hash(key)) % 2**32)
            for split in ("test", "val"):
                labels = np.array([0] * 6 + [1] * 6)
                score = rng.normal(0, 1, 12) + labels * 2 * auc
                parts.append(
                    pd.DataFrame(
                        {
                            "trial_key": key,
                            "trial_id": "t",
                            "split": split,
                            "path": [f"{split}/{i}" for i in range(12)],
                            "label": labels,
                            "defect": np.where(labels == 1, "scratch", "good"),
                            "score": score,
                            "rec": score,
                            "lat": 0.0,
                        }
                    )
                )
        pd.concat(parts).to_parquet(out / "scores.parquet", index=False)
    if history:
        parts = []
        for key, val in zip(ok["trial_key"], ok["val_auc"], strict=True):
            parts.append(
                pd.DataFrame(
                    {
                        "trial_key": key,
                        "trial_id": "t",
                        "iteration": [5, 10, 15, 20],
                        "seconds": [1.0, 2, 3, 4],
                        "loss_g": 1.0,
                        "loss_d": 1.0,
                        "adv": 0.7,
                        "ctx": 0.5,
                        "lat": 0.1,
                        "val_auc": [0.5, val - 0.1, val - 0.05, math.nan],
                    }
                )
            )
        pd.concat(parts).to_parquet(out / "history.parquet", index=False)
    if study is not None:
        (out / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    return out


def grid_study(grid: dict, seeds=(0, 1, 2), categories=("nut", "wood"), **sections) -> dict:
    return {
        "name": "hand",
        "description": "hand-built results",
        "dataset": {"kind": "synthetic", "categories": list(categories), "image_size": 32},
        "model": sections.get("model", {}),
        "train": sections.get("train", {"iterations": 20}),
        "seeds": list(seeds),
        **grid,
    }


def page(out: Path) -> Analysis:
    """Everything the report of `out` says, computed (what the renderer's sections format)."""
    return analyse(load_results(out))


def figures_of(out: Path) -> FigureWriter:
    return FigureWriter(out / "figures", len(page(out).categories))


# --- statistics against known answers -------------------------------------------------------------------------


def test_a_constant_effect_is_found_exactly(tmp_path):
    """Attention adds exactly +0.05 AUC in every seed and category: effect 0.05, interval [0.05, 0.05], helps."""
    rows = grid_rows(lambda f, s, c: base_auc(s, c) + (0.05 if f["attention"] else 0.0), {"attention": [True, False]})
    out = write_results(tmp_path, rows, grid_study({"grid": {"model.attention": [True, False]}}))
    (effect,) = page(out).effects
    assert effect.n == 6 and effect.dropped == 0
    assert abs(effect.mean - 0.05) < 1e-9
    assert abs(effect.low - 0.05) < 1e-9 and abs(effect.high - 0.05) < 1e-9
    assert effect.p < 0.05 and effect.verdict == HELPS
    assert effect.wins == 6 and effect.change == "off -> on"


def test_pure_noise_gives_no_evidence(tmp_path):
    """Noise with no effect: the interval covers 0 and the verdict is "no evidence either way"."""
    rng = np.random.default_rng(7)
    noise = {}
    for s in range(5):
        for c in ("nut", "wood"):
            e = rng.normal(0, 0.05)
            noise[(s, c)] = e if (s + (c == "wood")) % 2 else -e  # pure noise: as often up as down

    rows = grid_rows(
        lambda f, s, c: base_auc(s, c) + (noise[(s, c)] if f["attention"] else 0.0),
        {"attention": [True, False]},
        seeds=range(5),
    )
    out = write_results(tmp_path, rows, grid_study({"grid": {"model.attention": [True, False]}}, seeds=range(5)))
    (effect,) = page(out).effects
    assert effect.n == 10
    assert effect.low < 0 < effect.high
    assert effect.verdict == NO_EVIDENCE
    assert "no evidence either way" in render_report(out).read_text()


def test_summarize_degenerate_cases():
    assert summarize([])[4] == "not estimable"
    mean, low, high, _, verdict, note = summarize([0.03])
    assert mean == pytest.approx(0.03) and math.isnan(low) and math.isnan(high) and note == "one pair: no interval"
    assert verdict == NO_EVIDENCE
    # Four pairs all higher: the interval lies above 0, but the exact test cannot reach 0.05 with 4 pairs.
    _, low, _, _, verdict, note = summarize([0.02, 0.03, 0.04, 0.05])
    assert low > 0 and verdict == NO_EVIDENCE and "cannot reach" in note
    # Every pair tied at zero.
    assert summarize([0.0] * 8)[4] == NO_EVIDENCE
    # A clear loss over many pairs.
    assert summarize(-0.1 + np.linspace(-0.01, 0.01, 12))[4] == HURTS


def test_q_values_adjust_for_the_number_of_effects():
    from scipy import stats

    from ablation.report.stats import Effect, adjust
    from ablation.report.text import effect_sentence

    def effect(p: float) -> Effect:
        return Effect("up", "transposed -> bilinear", np.full(8, 0.01), 0, 0.01, 0.005, 0.02, p, HELPS, "")

    effects = adjust([effect(p) for p in (0.029, 0.4, 0.6, 0.001)])
    expected = stats.false_discovery_control([0.029, 0.4, 0.6, 0.001])
    assert [e.q for e in effects] == pytest.approx(list(expected))
    assert "may be chance" in effect_sentence(effects[0]) and "may be chance" not in effect_sentence(effects[3])


def test_tied_pairs_get_scipys_wilcoxon_p_value():
    """Tied differences go through permutation_test for speed; the p-value must be scipy.stats.wilcoxon's."""
    from scipy import stats

    from ablation.report.stats import signed_rank

    for d in ([0.05, 0.05, 0.02, -0.01, 0.05, 0.0625, 0.02], [0.03] * 6, [0.1, -0.1, 0.1, 0.0, 0.2, -0.1, 0.1, 0.1]):
        assert signed_rank(np.array(d))[0] == pytest.approx(stats.wilcoxon(d).pvalue, rel=1e-12)


def test_missing_cell_is_dropped_and_said(tmp_path):
    rows = grid_rows(lambda f, s, c: base_auc(s, c) + (0.05 if f["attention"] else 0.0), {"attention": [True, False]})
    rows = [r for r in rows if r["trial_key"] != "attention=true|seed=2|nut"]
    out = write_results(tmp_path, rows, grid_study({"grid": {"model.attention": [True, False]}}))
    (effect,) = page(out).effects
    assert effect.n == 5 and effect.dropped == 1
    text = render_report(out).read_text()
    assert "1 pair dropped" in text
    assert "11 recorded of 12 planned" in text and "1 never ran" in text


def test_failed_trials_are_listed_with_their_errors(tmp_path):
    rows = grid_rows(lambda f, s, c: base_auc(s, c), {"attention": [True, False]})
    rows[0] = row(
        rows[0]["variant"],
        rows[0]["seed"],
        rows[0]["category"],
        math.nan,
        status="failed",
        attention=True,
        error="FloatingPointError: non-finite loss by iteration 4",
    )
    out = write_results(tmp_path, rows, grid_study({"grid": {"model.attention": [True, False]}}))
    effect = page(out).effects[0]
    assert effect.dropped == 1 and effect.n == 5
    text = render_report(out).read_text()
    assert "## Failed trials (1)" in text
    assert "FloatingPointError: non-finite loss by iteration 4" in text
    assert "attention=true\\|seed=0\\|nut" in text  # trial keys' "|" escaped inside the table
    assert "1 failed" in text


def test_single_seed_is_said(tmp_path):
    rows = grid_rows(lambda f, s, c: base_auc(s, c) + 0.02 * f["attention"], {"attention": [True, False]}, seeds=[0])
    out = write_results(tmp_path, rows, grid_study({"grid": {"model.attention": [True, False]}}, seeds=[0]))
    text = render_report(out).read_text()
    assert "one seed: no spread" in text.lower()
    assert not re.search(r"\d ± \d", text.split("## Per category")[1])  # no spread is shown where there is none


def test_factorial_interaction_is_recovered(tmp_path):
    """y = base + 0.04 attention + 0.02 dsc + 0.03 attention*dsc: interaction exactly 0.03; attention's effect is
    0.04 with standard convs and 0.07 with DSC, so its main effect is their mean, 0.055."""

    def auc(f, s, c):
        a, d = float(f["attention"]), float(f["conv"] == "dsc")
        return base_auc(s, c) + 0.04 * a + 0.02 * d + 0.03 * a * d

    levels = {"attention": [True, False], "conv": ["dsc", "standard"]}
    rows = grid_rows(auc, levels)
    out = write_results(
        tmp_path, rows, grid_study({"grid": {"model.attention": [True, False], "model.conv": ["dsc", "standard"]}})
    )
    p = page(out)
    main_effects = {e.name: e for e in p.effects}
    assert main_effects["attention"].mean == pytest.approx(0.055, abs=1e-9)
    assert main_effects["conv"].mean == pytest.approx(0.035, abs=1e-9)
    assert main_effects["conv"].change == "standard -> dsc"
    (inter,) = p.interactions
    assert inter.name == "attention x conv" and inter.n == 6
    assert inter.mean == pytest.approx(0.03, abs=1e-9) and inter.low == pytest.approx(0.03, abs=1e-9)
    assert "### Two-factor interactions" in render_report(out).read_text()


def test_multi_level_factor_is_compared_with_the_base_level():
    rows = pd.DataFrame(grid_rows(lambda f, s, c: base_auc(s, c) + f["w_adv"] / 10, {"w_adv": [1.0, 0.5, 2.0]}))
    effects = grid_effects(rows, {"w_adv": [1.0, 0.5, 2.0]}, {"w_adv": 0.5})
    assert [e.name for e in effects] == ["w_adv=1", "w_adv=2"]
    assert effects[0].mean == pytest.approx(0.05) and effects[1].mean == pytest.approx(0.15)
    assert interactions(rows, {"w_adv": [1.0, 0.5, 2.0]}, {}) == []


def test_loco_effects_are_base_minus_component_off(tmp_path):
    rows = []
    offs = {"attention": (False, -0.05), "conv": ("standard", 0.0), "up": ("transposed", +0.04)}
    for seed in range(3):
        for category in ("nut", "wood"):
            rows.append(row("base", seed, category, base_auc(seed, category), design="loco"))
            for factor, (off, delta) in offs.items():
                name = f"{factor}={_fmt(off)}"
                rows.append(row(name, seed, category, base_auc(seed, category) + delta, design="loco", **{factor: off}))
    study = grid_study({"loco": {"model.attention": False, "model.conv": "standard", "model.up": "transposed"}})
    out = write_results(tmp_path, rows, study)
    effects = {e.name: e for e in page(out).effects}
    assert effects["attention"].mean == pytest.approx(0.05, abs=1e-9) and effects["attention"].verdict == HELPS
    assert effects["attention"].change == "off -> on"
    assert effects["conv"].mean == 0 and effects["conv"].verdict == NO_EVIDENCE
    assert effects["up"].verdict == HURTS
    text = render_report(out).read_text()
    assert "leave-one-component-out" in text and "base - component off" in text


# --- search ---------------------------------------------------------------------------------------------------


def search_rows(n: int = 12, category: str = "nut") -> list[dict]:
    """val AUC driven by lr alone (w_adv is noise), so fANOVA must rank lr first."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        lr, w_adv = float(10 ** rng.uniform(-4, -2)), float(rng.uniform(0.1, 1.0))
        val = 0.9 - 0.1 * abs(math.log10(lr) + 3)
        r = row(f"lr={lr:.4g},w_adv={w_adv:.4g}", i % 2, category, val + 0.02, design="search", lr=lr, w_adv=w_adv)
        r.update(trial_key=f"search#{i:04d}|seed={i % 2}|{category}", val_auc=val)
        rows.append(r)
    return rows


SEARCH = {
    "search": {
        "sampler": "tpe",
        "trials": 12,
        "metric": "val_auc",
        "space": {"train.lr": {"log_uniform": [1e-4, 1e-2]}, "model.w_adv": {"uniform": [0.1, 1.0]}},
    }
}


def test_search_importances_use_fanova(tmp_path):
    rows = search_rows()
    rows[-1].update(status="stopped", auc=math.nan)  # an ASHA stop: shown, not used for importances
    out = write_results(tmp_path, rows, grid_study(SEARCH, seeds=(0, 1), categories=("nut",)), history=True)
    trials = load_results(out).trials
    space = Study.from_dict(grid_study(SEARCH, seeds=(0, 1), categories=("nut",))).search.space
    values, note = param_importances(trials, distributions(space))
    assert note == "" and set(values) == {"lr", "w_adv"} and values["lr"] > values["w_adv"]
    assert "FanovaImportanceEvaluator" in EVALUATOR
    text = render_report(out).read_text()
    assert "FanovaImportanceEvaluator" in text and "### Best trials" in text
    assert "1 stopped early by ASHA" in text
    for name in ("search_history.png", "importances.png", "val_auc_history.png"):
        assert (out / "figures" / name).exists()
    # The best trial is chosen on val AUC: its row is ranked first.
    best = max((r for r in rows if r["status"] == "ok"), key=lambda r: r["val_auc"])
    assert text.split("| 1 | `")[1].startswith(best["trial_key"].split("|")[0])


def test_search_with_too_few_trials_says_so(tmp_path):
    out = write_results(tmp_path, search_rows(2), None)  # and no study.yaml: factors read off the variant names
    p = page(out)
    assert p.design.kind == "search" and p.design.searched == ["lr", "w_adv"]
    assert "importances need at least" in "\n".join(importance_section(p, figures_of(out)))


# --- robustness -----------------------------------------------------------------------------------------------


def test_without_study_yaml_the_factors_are_read_off_the_rows(tmp_path):
    rows = grid_rows(lambda f, s, c: base_auc(s, c) + 0.05 * (f["conv"] == "dsc"), {"conv": ["standard", "dsc"]})
    out = write_results(tmp_path, rows)
    p = page(out)
    assert p.design.inferred and p.design.levels == {"conv": ["dsc", "standard"]}
    assert p.effects[0].mean == pytest.approx(0.05) and p.effects[0].change == "standard -> dsc"


def test_float_settings_one_ulp_apart_are_one_level(tmp_path):
    """A JSON round trip can return lr 0.00020000000000000001 for 0.0002: still one level, still paired."""
    rows = grid_rows(lambda f, s, c: base_auc(s, c) + (0.05 if f["lr"] == 1e-3 else 0), {"lr": [2e-4, 1e-3]})
    for r in rows[::2]:
        r["lr"] = float(np.nextafter(r["lr"], 1.0))
    out = write_results(tmp_path, rows, grid_study({"grid": {"train.lr": [2e-4, 1e-3]}}))
    p = page(out)
    assert p.design.levels == {"lr": [2e-4, 1e-3]}
    (effect,) = p.effects
    assert effect.n == 6 and effect.dropped == 0 and effect.mean == pytest.approx(0.05)


def test_all_failed_study_renders(tmp_path):
    rows = [
        row("attention=true", s, "nut", math.nan, status="failed", attention=True, error="OSError: disk full")
        for s in range(2)
    ]
    out = write_results(tmp_path, rows, grid_study({"grid": {"model.attention": [True, False]}}))
    text = render_report(out).read_text()
    assert "No trial succeeded" in text and "OSError: disk full" in text
    assert "Forest plot skipped: no effect could be estimated" in text
    assert not list(out.glob("figures/*.png"))


def test_single_category_skips_per_category_figures(tmp_path):
    rows = grid_rows(lambda f, s, c: base_auc(s, c), {"attention": [True, False]}, categories=["nut"])
    out = write_results(tmp_path, rows, None)
    lines = category_section(page(out), figures_of(out))
    assert any("Per-category figures skipped: one category" in line for line in lines)


# --- figures and links ----------------------------------------------------------------------------------------


def test_figures_are_valid_pngs_and_every_link_resolves(tmp_path):
    def auc(f, s, c):
        return base_auc(s, c) + 0.04 * f["attention"] + 0.01 * (f["conv"] == "dsc")

    rows = grid_rows(auc, {"attention": [True, False], "conv": ["dsc", "standard"]})
    study = grid_study({"grid": {"model.attention": [True, False], "model.conv": ["dsc", "standard"]}})
    out = write_results(tmp_path / "study", rows, study, scores=True, history=True)
    path = render_report(out)
    assert path == out / "report.md"
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", path.read_text())
    expected = {
        "effects.png",
        "categories_heatmap.png",
        "categories_lines.png",
        "roc_best_worst.png",
        "val_auc_history.png",
    }
    assert {Path(link).name for link in links} == expected
    for link in links:
        assert not Path(link).is_absolute()
        target = out / link
        assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(target) as image:
            image.verify()
        assert target.stat().st_size < 200_000
    # The folder travels: the links still resolve after a move.
    moved = out.rename(tmp_path / "moved")
    assert all((moved / link).exists() for link in links)


def test_a_rerender_removes_figures_the_new_report_does_not_link(tmp_path):
    rows = grid_rows(lambda f, s, c: base_auc(s, c), {"attention": [True, False]}, seeds=[0, 1])
    out = write_results(tmp_path, rows, None)
    render_report(out)
    assert (out / "figures" / "categories_lines.png").exists()
    (out / "figures" / "mine.png").write_bytes(b"kept")  # not the report's: left alone
    write_results(out, [r for r in rows if r["category"] == "nut"])
    text = render_report(out).read_text()
    assert "categories_lines.png" not in text and not (out / "figures" / "categories_lines.png").exists()
    assert (out / "figures" / "effects.png").exists() and (out / "figures" / "mine.png").exists()


# --- the paper's tables ---------------------------------------------------------------------------------------

TABLE1 = """bottle .802 .791 .940 .954; cable .472 .715 .671 .754; capsule .445 .72 .708 .516;
carpet .331 .823 .788 .841; grid .865 .742 .652 .709; hazelnut .225 .869 .912 .904; leather .421 .812 .914 .926;
metal_nut .283 .695 .785 .545; pill .721 .669 .751 .848; screw .121 1.00 1.00 .904; tile .411 .724 .846 .854;
toothbrush .432 .712 .684 .695; transistor .689 .805 .808 .822; wood .557 .915 .914 .952; zipper .723 .739 .671 .705"""
TABLE2 = {
    "anogan": (0.59, 0.55, 0.50, 0.52),
    "ganomaly": (0.80, 0.75, 0.70, 0.72),
    "skip_ganomaly": (0.81, 0.76, 0.72, 0.74),
    "ssagan": (0.89, 0.82, 0.80, 0.81),
}
MODELS = ("anogan", "ganomaly", "skip_ganomaly", "ssagan")  # the paper's column order


def test_paper_tables_match_the_paper():
    tables = load_paper_tables()
    table1, table2 = tables.tables["table1"], tables.tables["table2"]
    assert table1.dataset == "mvtec" and table2.dataset == "kolektor"
    expected = [line.split() for line in TABLE1.replace("\n", " ").split(";")]
    assert len(expected) == 15
    for category, *values in expected:
        for model, value in zip(MODELS, values, strict=True):
            assert table1.value(model, "auc", category) == float(value), (category, model)
    assert sum(len(cats) for cats in table1.cells.values()) == 60
    for model, values in TABLE2.items():
        for metric, value in zip(("auc", "accuracy", "recall", "f1"), values, strict=True):
            assert table2.value(model, metric) == value, (model, metric)


def test_mvtec_study_is_compared_with_table_1(tmp_path):
    rows = []
    for model in ("ssagan", "skip_ganomaly"):
        for seed in range(3):
            for category in ("bottle", "wood"):
                auc = 0.9 + 0.01 * seed if model == "ssagan" else 0.8
                rows.append(row(f"name={model}", seed, category, auc, model=model, dataset="mvtec"))
    # An ablated ssagan is not the paper's model: it must not count.
    rows += [row("attention=false", s, "bottle", 0.1, attention=False, dataset="mvtec") for s in range(3)]
    out = write_results(tmp_path, rows, None)
    trials = load_results(out).trials
    comparison = compare(trials[trials["variant"] != "attention=false"], load_paper_tables().tables["table1"])
    bottle = comparison[(comparison["model"] == "ssagan") & (comparison["category"] == "bottle")].iloc[0]
    assert bottle["reported"] == 0.954 and bottle["mean"] == pytest.approx(0.91)
    assert bottle["diff"] == pytest.approx(0.91 - 0.954)
    text = "\n".join(paper_section(page(out), figures_of(out)))
    assert "Table 1" in text and "### proposed (ssagan)" in text and "### Skip-GANomaly" in text
    assert "| bottle | 0.954 | 0.910 ± 0.010 | -0.044 |" in text
    assert "attention=false" not in text.split("Rows used")[1].split("\n")[0]


def test_kolektor_study_is_compared_with_table_2(tmp_path):
    rows = [row("base", s, "kolektor", 0.85, dataset="kolektor") for s in range(2)]
    out = write_results(tmp_path, rows, None)
    text = "\n".join(paper_section(page(out), figures_of(out)))
    assert "Table 2" in text
    assert "| proposed (ssagan) | AUC | 0.89 | 0.850 ± 0.000 | -0.040 |" in text
    assert "F1 (test-optimal; comparison only)" in text


# --- command line ---------------------------------------------------------------------------------------------


def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error:") and "Traceback" not in err
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "trials.parquet")
    assert main([str(tmp_path / "trials.parquet")]) == 2
    assert "missing columns" in capsys.readouterr().err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "trials.parquet").write_text("not parquet")
    assert main([str(tmp_path / "other")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_cli_renders_from_trials_parquet(tmp_path, capsys):
    rows = grid_rows(lambda f, s, c: base_auc(s, c), {"attention": [True, False]}, seeds=[0, 1], categories=["nut"])
    out = write_results(tmp_path, rows, None)
    assert main([str(out / "trials.parquet")]) == 0
    assert capsys.readouterr().out.strip() == str(out / "report.md")
    assert REPORT_FILE == "report.md" and (out / "report.md").exists()


def test_loco_rows_without_study_yaml(tmp_path):
    rows = [row("base", s, "nut", 0.7, design="loco") for s in range(3)]
    rows += [row("attention=false", s, "nut", 0.6, design="loco", attention=False) for s in range(3)]
    out = write_results(tmp_path, rows, None)
    a = page(out)
    (effect,) = loco_effects(a.rows, a.design.removed)
    assert effect.mean == pytest.approx(0.1) and effect.n == 3


@pytest.mark.slow
def test_the_runner_renders_the_report(tmp_path):
    """End to end: `ablation.run` (serial, no Ray) trains a tiny study and renders its report at the end."""
    from ablation.run.cli import main as run_main

    from .studies import write_study

    study = write_study(
        tmp_path / "study.yaml", train={"iterations": 4, "batch_size": 4, "log_every": 2, "eval_every": 2}
    )
    out = tmp_path / "out"
    assert run_main([str(study), "--out", str(out), "--serial"]) == 0
    text = (out / "report.md").read_text()
    assert "## Component effects" in text and "`attention`" in text
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (out / link).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_category_with_few_validation_normals_is_named(tmp_path):
    rows = grid_rows(lambda f, s, c: base_auc(s, c), {"attention": [True, False]})
    for r in rows:
        r["n_val_normal"] = 6 if r["category"] == "wood" else 20
    out = write_results(tmp_path, rows, grid_study({"grid": {"model.attention": [True, False]}}))
    text = render_report(out).read_text()
    assert "| **validation normals** | nut 20, wood 6; **fewer than 20 in wood**" in text


def test_effects_can_be_judged_on_validation_auc(tmp_path):
    """`analysis.metric: val_auc`: the effect is measured on val AUC (a choice made without the test set)."""
    rows = grid_rows(lambda f, s, c: base_auc(s, c), {"score_normalize": ["none", "val_mean"]})
    for r in rows:
        r["val_auc"] = r["auc"] - 0.1 + (0.05 if r["score_normalize"] == "val_mean" else 0.0)
    study = grid_study({"grid": {"model.score_normalize": ["none", "val_mean"]}})
    study["analysis"] = {"metric": "val_auc"}
    out = write_results(tmp_path, rows, study)
    (effect,) = page(out).effects
    assert effect.mean == pytest.approx(0.05) and effect.decision.verdict == "helps"
    assert "validation AUC (`analysis.metric: val_auc`" in render_report(out).read_text()


def test_categories_decided_in_opposite_directions_are_said(tmp_path):
    """Attention adds 0.1 on nut and takes 0.1 on wood, in every seed: each category is decided, in opposite
    directions; the pooled effect (0 on average) must not hide it."""
    levels = {"attention": [True, False]}
    rows = grid_rows(
        lambda f, s, c: base_auc(s, c) + (0.1 + 0.001 * s) * f["attention"] * (1 if c == "nut" else -1),
        levels,
        seeds=range(5),
    )
    out = write_results(tmp_path, rows, grid_study({"grid": {"model.attention": [True, False]}}, seeds=range(5)))
    (effect,) = page(out).effects
    assert effect.by_category["nut"].verdict == "helps" and effect.by_category["wood"].verdict == "hurts"
    assert effect.decision.verdict == "undecided"
    summary = render_report(out).read_text().split("## Study")[0]
    assert "**categories disagree**: helps on nut, hurts on wood" in summary


def test_the_summary_names_the_scope_of_its_verdicts(tmp_path):
    rows = grid_rows(lambda f, s, c: base_auc(s, c) + 0.05 * f["attention"], {"attention": [True, False]})
    out = write_results(tmp_path, rows, grid_study({"grid": {"model.attention": [True, False]}}))
    summary = render_report(out).read_text().split("## Study")[0]
    assert "These verdicts hold for what was run: synthetic (nut, wood) at 32 px, 20 iterations" in summary
