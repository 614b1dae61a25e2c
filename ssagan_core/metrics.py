"""Image-level metrics from raw anomaly scores (scikit-learn), with the decision threshold chosen on the validation
split only: no metric here ever looks at test labels to pick anything, except `f1_max`, which is labelled as the
test-optimal F1 and kept only for comparison with papers that report it."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)


def auc_or_nan(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC, or NaN when only one class is present."""
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return math.nan
    return float(roc_auc_score(labels, scores))


def best_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """(threshold, F1) maximising F1 = 2PR / (P + R) over the precision-recall curve; predict defective if >= t."""
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    i = int(np.argmax(f1))
    return float(thresholds[i]), float(f1[i])


def choose_threshold(val_scores: np.ndarray, val_labels: np.ndarray, rule: str, quantile: float) -> tuple[float, str]:
    """The decision threshold from the validation split, and the rule actually used.

    `val_quantile`: the `quantile` quantile of the validation normal images' scores, i.e. a false-positive budget
    of 1 - quantile on held-out normal images. `val_f1`: the F1-optimal threshold on the validation split (normal
    images and their synthetic-defect copies); falls back to `val_quantile` if the split has no defects.
    """
    val_scores, val_labels = np.asarray(val_scores), np.asarray(val_labels)
    normal = val_scores[val_labels == 0]
    if len(normal) == 0:
        raise ValueError("the validation split has no normal images: cannot choose a threshold")
    if rule == "val_f1" and 0 < val_labels.sum() < len(val_labels):
        return best_f1_threshold(val_labels, val_scores)[0], "val_f1"
    return float(np.quantile(normal, quantile)), "val_quantile"


def compute_metrics(
    test_scores: np.ndarray,
    test_labels: np.ndarray,
    val_scores: np.ndarray,
    val_labels: np.ndarray,
    rule: str = "val_quantile",
    quantile: float = 0.95,
) -> dict[str, float | str]:
    """AUC, AUPR, and accuracy/precision/recall/F1 at the validation threshold (defective iff score >= threshold)."""
    test_scores, test_labels = np.asarray(test_scores, np.float64), np.asarray(test_labels)
    threshold, used = choose_threshold(val_scores, val_labels, rule, quantile)
    predicted = (test_scores >= threshold).astype(np.int64)
    both = len(np.unique(test_labels)) == 2
    return {
        "auc": auc_or_nan(test_labels, test_scores),
        "aupr": float(average_precision_score(test_labels, test_scores)) if both else math.nan,
        "accuracy": float(accuracy_score(test_labels, predicted)),
        "precision": float(precision_score(test_labels, predicted, zero_division=0)),
        "recall": float(recall_score(test_labels, predicted, zero_division=0)),
        "f1": float(f1_score(test_labels, predicted, zero_division=0)),
        "threshold": threshold,
        "threshold_rule_used": used,
        "f1_max": best_f1_threshold(test_labels, test_scores)[1] if both else math.nan,
        "val_auc": auc_or_nan(val_labels, val_scores),
    }
