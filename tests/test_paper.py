"""The paper's protocol (`paper_tables.yaml`) against a study's runs: every differing setting listed, a row labelled
"paper protocol" only when nothing differs, and the settings the paper leaves open listed once and never counted.
Result folders are hand-built with test_report's builders; the shipped paper studies are expanded, not trained."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ablation.report.paper import differences, load_paper_tables, protocol_of, unstated
from ablation.report.render_paper import paper_section, paper_summary
from ablation.results.rows import settings
from ablation.study.design import trial_specs
from ablation.study.load import load_study

from .test_report import figures_of, page, row, write_results

STUDIES = Path(__file__).resolve().parents[1] / "studies"

# The paper's full protocol on the columns `row()` fills with tiny values (and `score_normalize`, which it leaves
# out): section 4.2's iterations and lr, the official code's widths and raw score.
PAPER = {
    "image_size": 256,
    "base_channels": 64,
    "max_channels": 512,
    "ndf": 64,
    "nz": 100,
    "anogan_steps": 500,
    "iterations": 10_000,
    "batch_size": 32,
    "lr": 2e-4,
    "score_normalize": "none",
}
# A narrow, short run with the normalised score and a 5x learning rate: exactly these six settings differ.
OURS = {**PAPER, "base_channels": 16, "max_channels": 128, "ndf": 16, "iterations": 300, "score_normalize": "val_mean"}
OURS["lr"] = 1e-3
OURS_DIFFER = {"base_channels", "max_channels", "ndf", "iterations", "score_normalize", "lr"}


def mvtec_rows(**settings) -> list[dict]:
    return [
        row(f"name={model}", seed, category, 0.9, model=model, dataset="mvtec", **settings)
        for model in ("ssagan", "skip_ganomaly")
        for seed in range(2)
        for category in ("bottle", "wood")
    ]


def paper_text(out) -> str:
    return "\n".join(paper_section(page(out), figures_of(out)))


def test_a_run_at_the_papers_protocol_has_no_differences_and_is_labelled_so(tmp_path):
    out = write_results(tmp_path, mvtec_rows(**PAPER))
    trials = pd.DataFrame(mvtec_rows(**PAPER))
    for model, runs in trials.groupby("model"):
        assert differences(runs) == [], model
    text = paper_text(out)
    assert text.count("Protocol: paper protocol.") == 2  # under both models' Table 1
    assert "our protocol" not in text and "| model | setting |" not in text
    assert "Every run used follows the paper's protocol" in text


def test_a_narrow_short_val_mean_fast_run_lists_exactly_its_differences(tmp_path):
    trials = pd.DataFrame(mvtec_rows(**OURS))
    ssagan = differences(trials[trials["model"] == "ssagan"])
    assert {d.setting for d in ssagan} == OURS_DIFFER
    got = {d.setting: (d.ours, d.paper) for d in ssagan}
    assert got["lr"] == ("0.001", "0.0002") and got["score_normalize"] == ("val_mean", "none")
    assert got["base_channels"] == ("16", "64") and got["max_channels"] == ("128", "512")
    # 300 iterations of batch 32 over row()'s 22 training images: batch capped at 22, so 300 epochs.
    assert got["iterations"] == ("300 (≈ 300 epochs)", "10,000")
    # Skip-GANomaly has no max_channels (its U-Net's widths are fixed by ngf): the others differ.
    skip = differences(trials[trials["model"] == "skip_ganomaly"])
    assert {d.setting for d in skip} == OURS_DIFFER - {"max_channels"}

    out = write_results(tmp_path, mvtec_rows(**OURS))
    text = paper_text(out)
    assert "paper protocol" not in text and "paper settings" not in text
    assert "Protocol: our protocol (6 differences, listed above)." in text
    assert "Protocol: our protocol (5 differences, listed above)." in text
    assert "| proposed (ssagan) | `lr` | 0.001 | 0.0002 | section 4.2 |" in text
    assert "| Skip-GANomaly | `score_normalize` | val_mean | none |" in text
    summary = "\n".join(paper_summary(page(out)))
    assert "proposed (ssagan) -0.053 (our protocol, 6 differences from the paper's)" in summary


def test_unstated_settings_are_listed_once_and_never_counted(tmp_path):
    """The paper gives no image size, batch size, threshold rule or input noise: ours are shown, not counted."""
    rows = mvtec_rows(**{**PAPER, "image_size": 64, "batch_size": 8, "threshold_rule": "val_f1"})
    trials = pd.DataFrame(rows)
    assert differences(trials[trials["model"] == "ssagan"]) == []
    listed = {name: ours for name, ours, _ in unstated(trials)}
    assert listed == {"image_size": "64", "batch_size": "8", "threshold_rule": "val_f1", "input_noise": "0"}
    text = paper_text(write_results(tmp_path, rows))
    assert text.count("Not stated by the paper") == 1 and text.count("- `image_size`: ours 64") == 1
    assert text.count("Protocol: paper protocol.") == 2


def test_our_values_are_all_shown_when_they_vary_and_a_missing_column_is_a_difference():
    runs = pd.DataFrame([row("a", 0, "bottle", 0.9, **PAPER), row("b", 0, "bottle", 0.9, **{**PAPER, "lr": 1e-3})])
    assert differences(runs) == [("lr", "0.0002, 0.001", "0.0002")]
    without = runs[runs["lr"] == 2e-4].drop(columns=["score_normalize"])  # an old results folder
    assert differences(without) == [("score_normalize", "not recorded", "none")]
    with pytest.raises(ValueError, match="one model's runs"):
        differences(pd.DataFrame(mvtec_rows(**PAPER)))


def test_table_2_labels_each_row_with_its_protocol(tmp_path):
    rows = [row("base", s, "kolektor", 0.85, dataset="kolektor", **PAPER) for s in range(2)]
    rows += [row("base", s, "kolektor", 0.8, model="ganomaly", dataset="kolektor", **OURS) for s in range(2)]
    text = paper_text(write_results(tmp_path, rows))
    assert "| proposed (ssagan) | AUC | 0.89 | 0.850 ± 0.000 | -0.040 | paper protocol |" in text
    # GANomaly has no score mix and no max_channels: its differences are the widths, iterations and lr.
    assert "| GANomaly | AUC | 0.80 | 0.800 ± 0.000 | +0.000 | our protocol (4 differences, listed above) |" in text
    assert "- the split: ours keeps all surfaces of one commutator (`kosNN`) on one side" in text


@pytest.mark.parametrize("name", ["paper_mvtec", "paper_kolektor"])
def test_the_shipped_paper_studies_run_the_papers_protocol(name, monkeypatch, tmp_path):
    """Every protocol setting maps to a real trials.parquet column, and the paper studies match the paper in all."""
    monkeypatch.setenv("MVTEC_ROOT", str(tmp_path))
    monkeypatch.setenv("KOLEKTOR_ROOT", str(tmp_path))
    study = load_study(STUDIES / f"{name}.yaml")
    trials = pd.DataFrame([settings(spec) for spec in trial_specs(study, ("bottle",))])
    assert set(trials["model"]) == {"anogan", "ganomaly", "skip_ganomaly", "ssagan"}
    for model, runs in trials.groupby("model"):
        assert set(protocol_of(str(model))) <= set(trials.columns), model
        assert differences(runs) == [], model
    assert {s.name for s in load_paper_tables().protocol.values() if s.value is None} <= set(trials.columns)
