"""Anomaly maps, pixel metrics and galleries through the real pieces: a short training run on the embedded data, the
serial runner into a real output folder, the report's section "Where the model looks", and hand-built rows for what
the report says when pixel metrics are missing."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ablation.report.cli import render_report
from ablation.run.cli import main
from ssagan_core.config import ModelConfig, TrainConfig
from ssagan_core.data import load_category
from ssagan_core.data.config import DataConfig
from ssagan_core.gallery import FIXED, WORST, fixed_images, worst_images
from ssagan_core.pixel_metrics import pixel_metrics
from ssagan_core.training import train

from .studies import write_study
from .test_report import grid_rows, grid_study, write_results

TINY = {"base_channels": 4, "max_channels": 16, "ndf": 4, "nz": 8}


@pytest.fixture(scope="module")
def nut():
    return load_category(
        DataConfig(kind="synthetic", image_size=32, n_train=24, n_test_good=6, n_test_defective=6), "nut"
    )


@pytest.mark.parametrize("model", ["ssagan", "skip_ganomaly", "ganomaly"])
def test_a_trial_records_pixel_metrics_and_a_small_gallery(nut, model) -> None:
    result = train(ModelConfig(model=model, image_size=32, **TINY), TrainConfig(iterations=3, batch_size=4), nut, 0)
    m = result.metrics
    assert result.test_maps.shape == (len(nut.test), 32, 32) and result.test_maps.dtype == np.float32
    assert 0 <= m["pixel_auc"] <= 1 and 0 <= m["aupro"] <= 1 and m["pixel_note"] == ""
    again = pixel_metrics(result.test_maps, nut.test.masks)  # recomputable from the maps and masks
    assert again == {"pixel_auc": m["pixel_auc"], "aupro": m["aupro"]}
    assert "map" not in result.test_scores  # per-image scores stay one value per image
    picture = Image.open(io.BytesIO(result.gallery))
    rows = FIXED + 2 * WORST
    assert len(result.gallery) < 300_000 and picture.height % rows == 0 and picture.width > picture.height / rows * 4


def test_the_anogan_baseline_maps_the_image_its_latent_search_found(nut) -> None:
    cfg = ModelConfig(model="anogan", image_size=32, anogan_steps=2, **TINY)
    result = train(cfg, TrainConfig(iterations=2, batch_size=4), nut, 0)
    assert 0 <= result.metrics["pixel_auc"] <= 1 and result.metrics["pixel_note"] == ""
    assert result.test_maps.shape == (len(nut.test), 32, 32) and result.gallery


def test_fixed_images_depend_on_the_labels_and_seed_only() -> None:
    labels = np.array([0] * 10 + [1] * 10)
    assert fixed_images(labels, 3) == fixed_images(labels, 3)
    picked = fixed_images(labels, 3)
    assert sum(labels[picked]) == FIXED - 1 and len(set(picked)) == FIXED
    assert fixed_images(labels, 4) != picked  # another seed, other images
    scores = np.arange(20.0)
    worst = worst_images(labels, scores, picked)
    alarms = [i for i, kind in worst if kind == "false alarm"]
    misses = [i for i, kind in worst if kind == "miss"]
    normal_left = [i for i in range(10) if i not in picked]
    defective_left = [i for i in range(10, 20) if i not in picked]
    assert alarms == sorted(normal_left, reverse=True)[:WORST] and misses == defective_left[:WORST]


def test_a_study_writes_galleries_and_its_report_shows_where_the_model_looks(tmp_path) -> None:
    study = write_study(tmp_path / "study.yaml", seeds=[0])
    out = tmp_path / "out"
    assert main([str(study), "--out", str(out), "--serial"]) == 0
    trials = pd.read_parquet(out / "trials.parquet")
    assert trials["pixel_auc"].between(0, 1).all() and trials["aupro"].between(0, 1).all()
    assert all((out / g).is_file() for g in trials["gallery"]) and trials["gallery"].is_unique
    report = (out / "report.md").read_text()
    assert "## Where the model looks" in report and "pixel AUROC" in report and "### Galleries" in report
    for g in trials["gallery"]:
        assert f"]({g})" in report  # each variant's gallery, side by side, linked relative to the report
    assert "Effects on pixel AUROC" in report and "Effects on AUPRO" in report


def test_the_report_says_why_pixel_metrics_are_missing(tmp_path) -> None:
    rows = grid_rows(lambda values, seed, category: 0.7, {"model.attention": [True, False]})
    for r in rows:
        r.update(pixel_auc=float("nan"), aupro=float("nan"), pixel_note="no masks in this dataset", gallery="")
    out = write_results(tmp_path / "out", rows, grid_study({"model.attention": [True, False]}))
    report = render_report(out).read_text()
    assert f"No pixel metrics: no masks in this dataset ({len(rows)} trials)." in report


def test_older_results_without_pixel_columns_render_without_the_section(tmp_path) -> None:
    rows = grid_rows(lambda values, seed, category: 0.7, {"model.attention": [True, False]})
    out = write_results(tmp_path / "out", rows, grid_study({"model.attention": [True, False]}))
    assert "Where the model looks" not in render_report(out).read_text()
