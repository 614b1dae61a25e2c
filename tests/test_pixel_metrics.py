"""Pixel-level metrics (ssagan_core/pixel_metrics.py) against slow, obvious reference implementations on small random
cases (equal to 1e-6), hand-made cases with known answers, and the anomaly map's smoothing against scipy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import ndimage

from ssagan_core.pixel_metrics import aupro, default_sigma, error_map, gaussian_blur, pixel_auc


def reference_pixel_auc(maps: np.ndarray, masks: np.ndarray) -> float:
    """P(defective pixel > normal pixel) + half the ties, over every pair."""
    v, t = maps.reshape(-1), masks.reshape(-1) > 0
    pos, neg = v[t], v[~t]
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def reference_aupro(maps: np.ndarray, masks: np.ndarray, limit: float = 0.3) -> float:
    """Every distinct score as a threshold; each region's overlap counted explicitly; the curve integrated with the
    trapezoid rule up to `limit` (interpolated there) and divided by it."""
    masks = masks > 0
    regions = []
    for i in range(len(masks)):
        labels, n = ndimage.label(masks[i], structure=np.ones((3, 3)))
        regions += [(i, labels == r) for r in range(1, n + 1)]
    points = [(0.0, 0.0)]
    for t in sorted(set(maps.reshape(-1).tolist()), reverse=True):
        flagged = maps >= t
        fpr = (flagged & ~masks).sum() / (~masks).sum()
        pro = np.mean([flagged[i][region].mean() for i, region in regions])
        points.append((fpr, pro))
    area = 0.0
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if x0 >= limit:
            break
        if x1 > limit:
            y1 = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
            x1 = limit
        area += (x1 - x0) * (y0 + y1) / 2
    return area / limit


def _case(rng: np.random.Generator, n=4, size=12, quantised=False):
    masks = np.zeros((n, size, size), np.uint8)
    for i in range(1, n):  # image 0 defect-free; the others one to three blobs
        for _ in range(rng.integers(1, 4)):
            r, c, h, w = rng.integers(0, size - 3), rng.integers(0, size - 3), rng.integers(1, 4), rng.integers(1, 4)
            masks[i, r : r + h, c : c + w] = 1
    maps = rng.random(masks.shape) + 0.8 * masks * rng.random(masks.shape)
    if quantised:  # many ties, as in real maps of flat regions
        maps = np.round(maps * 4) / 4
    return maps, masks


@pytest.mark.parametrize("seed", range(12))
def test_both_metrics_equal_the_slow_references(seed) -> None:
    rng = np.random.default_rng(seed)
    maps, masks = _case(rng, quantised=seed % 2 == 1)
    assert pixel_auc(maps, masks) == pytest.approx(reference_pixel_auc(maps, masks), abs=1e-6)
    assert aupro(maps, masks) == pytest.approx(reference_aupro(maps, masks), abs=1e-6)
    assert aupro(maps, masks, 1.0) == pytest.approx(reference_aupro(maps, masks, 1.0), abs=1e-6)


def test_hand_made_cases_with_known_answers() -> None:
    masks = np.zeros((2, 8, 8), np.uint8)
    masks[1, 2:4, 2:4] = 1  # one region of 4 pixels
    masks[1, 6:8, 6:8] = 1  # a second region, also 4 pixels
    perfect = masks.astype(float)
    assert pixel_auc(perfect, masks) == 1.0 and aupro(perfect, masks) == pytest.approx(1.0)
    assert pixel_auc(1 - perfect, masks) == 0.0 and aupro(1 - perfect, masks) == pytest.approx(0.0)
    # a constant map: one threshold takes the curve from (0, 0) to (1, 1); up to 0.3 that is 0.3 * 0.3 / 2, / 0.3
    flat = np.zeros(masks.shape)
    assert pixel_auc(flat, masks) == 0.5 and aupro(flat, masks) == pytest.approx(0.15)
    # one region found perfectly, the other scored below every normal pixel: PRO is 0.5 from FPR 0 until FPR 1
    half = np.full(masks.shape, 0.5)
    half[1, 2:4, 2:4] = 1.0
    half[1, 6:8, 6:8] = 0.0
    assert aupro(half, masks) == pytest.approx(0.5)
    half[1, 6:8, 6:8] = 0.75  # now found before any normal pixel too: 1 from FPR 0
    assert aupro(half, masks) == pytest.approx(1.0)
    # region-wise, not pixel-wise: a big region found and a small one missed counts 0.5, whatever their sizes
    big = np.zeros((1, 10, 10), np.uint8)
    big[0, :5, :] = 1  # 50 pixels
    big[0, 9, 9] = 1  # 1 pixel, its own region
    m = big.astype(float)
    m[0, 9, 9] = -1.0
    assert aupro(m, big, 1e-9) == pytest.approx(0.5, abs=1e-6)


def test_without_defects_or_without_normal_pixels_the_metrics_are_nan() -> None:
    maps = np.random.default_rng(0).random((2, 4, 4))
    assert np.isnan(pixel_auc(maps, np.zeros((2, 4, 4)))) and np.isnan(aupro(maps, np.zeros((2, 4, 4))))
    assert np.isnan(aupro(maps, np.ones((2, 4, 4))))
    with pytest.raises(ValueError, match="fpr_limit"):
        aupro(maps, np.zeros((2, 4, 4)), 0.0)


@pytest.mark.parametrize("sigma", [0.25, 1.0, 2.5])
def test_the_smoothing_equals_scipy_gaussian_filter(sigma) -> None:
    images = torch.rand(2, 1, 9, 13, dtype=torch.float64)
    ours = gaussian_blur(images, sigma).numpy()
    theirs = np.stack([ndimage.gaussian_filter(im[0], sigma, mode="reflect", truncate=4.0) for im in images.numpy()])
    np.testing.assert_allclose(ours[:, 0], theirs, atol=1e-12)


def test_error_map_is_the_channel_mean_of_the_squared_error() -> None:
    x, x_hat = torch.rand(3, 3, 8, 8), torch.rand(3, 3, 8, 8)
    torch.testing.assert_close(error_map(x, x_hat, 0.0), (x - x_hat).pow(2).mean(1))
    assert error_map(x, x_hat, 1.0).shape == (3, 8, 8)
    assert default_sigma(256) == 4.0 and default_sigma(64) == 1.0


def test_pixel_auc_equals_scikit_learn_on_a_larger_case() -> None:
    from sklearn.metrics import roc_auc_score

    maps, masks = _case(np.random.default_rng(7), n=10, size=32, quantised=True)
    assert pixel_auc(maps.astype(np.float32), masks) == pytest.approx(
        roc_auc_score(masks.reshape(-1), maps.astype(np.float32).reshape(-1)), abs=1e-9
    )
