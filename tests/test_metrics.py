"""Metrics against known answers, and the threshold rule that never looks at test labels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ssagan_core.metrics import auc_or_nan, best_f1_threshold, choose_threshold, compute_metrics


def test_perfect_separation() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    val_scores, val_labels = np.array([0.1, 0.15, 0.2, 0.25]), np.zeros(4, int)
    m = compute_metrics(scores, labels, val_scores, val_labels, "val_quantile", 0.5)
    assert m["auc"] == 1.0 and m["aupr"] == 1.0 and m["f1_max"] == 1.0
    assert m["threshold"] == pytest.approx(0.175)  # median of the validation normals
    # 0.2 and 0.3 are above the threshold: two false positives
    assert (m["accuracy"], m["precision"], m["recall"], m["f1"]) == (4 / 6, 3 / 5, 1.0, pytest.approx(0.75))
    assert math.isnan(m["val_auc"])  # the validation split had no defects


def test_auc_matches_sklearn_and_ignores_score_scale() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = rng.normal(size=200) + labels
    val = rng.normal(size=50)
    m = compute_metrics(scores, labels, val, np.zeros(50, int))
    assert m["auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert compute_metrics(3 * scores + 7, labels, 3 * val + 7, np.zeros(50, int))["auc"] == pytest.approx(m["auc"])


def test_threshold_is_chosen_without_test_labels() -> None:
    rng = np.random.default_rng(1)
    val_scores, val_labels = rng.normal(size=40), np.zeros(40, int)
    test_scores = rng.normal(size=30)
    a = compute_metrics(test_scores, rng.integers(0, 2, 30), val_scores, val_labels)
    b = compute_metrics(test_scores, rng.integers(0, 2, 30), val_scores, val_labels)
    assert a["threshold"] == b["threshold"] == pytest.approx(np.quantile(val_scores, 0.95))


def test_val_f1_rule_and_its_fallback() -> None:
    val_scores = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8])
    val_labels = np.array([0, 0, 0, 1, 1, 1])
    assert choose_threshold(val_scores, val_labels, "val_f1", 0.95) == (0.6, "val_f1")
    threshold, used = choose_threshold(val_scores[:3], val_labels[:3], "val_f1", 0.5)
    assert (threshold, used) == (0.2, "val_quantile")
    with pytest.raises(ValueError, match="no normal images"):
        choose_threshold(val_scores[3:], val_labels[3:], "val_quantile", 0.5)


def test_best_f1_and_single_class() -> None:
    assert best_f1_threshold(np.array([0, 1, 1]), np.array([0.1, 0.5, 0.9])) == (0.5, 1.0)
    assert math.isnan(auc_or_nan(np.ones(4), np.arange(4)))
