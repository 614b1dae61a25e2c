"""Pixel-level metrics of anomaly maps against ground-truth masks: `pixel_auc` and `aupro`, and the maps themselves.

- `pixel_auc`: ROC AUC over every test pixel (defective pixels against all others), ties counted half.
- `aupro`: the normalised area under the per-region-overlap curve up to a false-positive rate of 0.3 (Bergmann et al.,
  "The MVTec Anomaly Detection Dataset", IJCV 2021, section 5.2): regions are the connected components (8-connected)
  of each mask; at a threshold t, PRO(t) is the mean over all regions of the fraction of the region's pixels scored
  >= t, FPR(t) the fraction of defect-free pixels (of every test image) scored >= t. The curve is integrated with the
  trapezoid rule from FPR 0 to 0.3, interpolated at 0.3, and divided by 0.3, so a perfect map gives 1.
  Both computed exactly from one sort of the pixels (`pixel_metrics`): the curves' points at the ends of runs of
  equal scores (every distinct threshold), each defective pixel weighing 1 / (its region's size x the regions).
- `error_map` / `gaussian_blur`: the anomaly map of a reconstruction model: the squared error per pixel, averaged over
  the channels, smoothed with a Gaussian (sigma 4 px at 256 px by default, scaled to the image size; reflected edges).
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

FPR_LIMIT = 0.3
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def default_sigma(image_size: int) -> float:
    """The usual smoothing of anomaly maps (4 px at 256 px), scaled to `image_size`."""
    return 4.0 * image_size / 256


def pixel_auc(maps: np.ndarray, masks: np.ndarray) -> float:
    """ROC AUC of every pixel's anomaly value against its mask (N, H, W); NaN when the masks hold one class only."""
    return pixel_metrics(maps, masks)["pixel_auc"]


def aupro(maps: np.ndarray, masks: np.ndarray, fpr_limit: float = FPR_LIMIT) -> float:
    """The normalised area under the PRO curve up to `fpr_limit` (module docstring); NaN without defective or
    without defect-free pixels."""
    return pixel_metrics(maps, masks, fpr_limit)["aupro"]


def pixel_metrics(maps: np.ndarray, masks: np.ndarray, fpr_limit: float = FPR_LIMIT) -> dict[str, float]:
    """{"pixel_auc", "aupro"} from one sort of every pixel: the ROC's and the PRO curve's points at the ends of runs of
    equal values (every distinct threshold), both integrated with the trapezoid rule (for the ROC this is the
    Mann-Whitney statistic with ties counted half, scikit-learn's `roc_auc_score`)."""
    if not 0 < fpr_limit <= 1:
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
    maps, masks = np.asarray(maps), np.asarray(masks) > 0
    if maps.shape != masks.shape or maps.ndim != 3:
        raise ValueError(f"maps and masks must both be (N, H, W), got {maps.shape} and {masks.shape}")
    normal = ~masks
    n_normal, n_defective = int(normal.sum()), int(masks.sum())
    if n_normal == 0 or n_defective == 0:
        return {"pixel_auc": float("nan"), "aupro": float("nan")}
    weight = np.zeros(masks.shape, dtype=np.float64)  # per defective pixel: 1 / (its region's size x regions)
    labelled = [(i, *ndimage.label(masks[i], structure=EIGHT_CONNECTED)) for i in range(len(masks)) if masks[i].any()]
    regions = sum(n for _, _, n in labelled)
    for i, labels, n in labelled:
        sizes = np.bincount(labels.reshape(-1), minlength=n + 1).astype(np.float64)
        per_label = np.zeros(n + 1)
        per_label[1:] = 1.0 / (sizes[1:] * regions)
        weight[i] = per_label[labels]
    values = maps.reshape(-1)
    order = np.argsort(-values)  # the order within a run of equal values does not matter: only its end is used
    values, is_normal = values[order], normal.reshape(-1)[order]
    ends = np.flatnonzero(np.r_[values[1:] != values[:-1], True])  # the last pixel of each run of equal values
    fpr = np.r_[0.0, np.cumsum(is_normal)[ends] / n_normal]
    tpr = np.r_[0.0, np.cumsum(~is_normal)[ends] / n_defective]
    pro = np.r_[0.0, np.minimum(np.cumsum(weight.reshape(-1)[order])[ends], 1.0)]
    return {
        "pixel_auc": float(np.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2)),
        "aupro": _area_to(fpr, pro, fpr_limit) / fpr_limit,
    }


def trial_pixel_metrics(maps: np.ndarray | None, masks: np.ndarray | None) -> dict:
    """A trial's pixel columns: `pixel_auc` and `aupro` of its test maps (None: the dataset has no masks), the
    seconds they took, and why they are NaN when they are (`pixel_note`)."""
    nan = float("nan")
    if maps is None or masks is None:
        return {"pixel_auc": nan, "aupro": nan, "pixel_seconds": nan, "pixel_note": "no masks in this dataset"}
    tic = time.perf_counter()
    result: dict = pixel_metrics(maps, masks)
    result["pixel_seconds"] = time.perf_counter() - tic
    result["pixel_note"] = "" if np.isfinite(result["aupro"]) else "no defective pixels in the test masks"
    return result


def _area_to(x: np.ndarray, y: np.ndarray, limit: float) -> float:
    """Trapezoid area under the non-decreasing curve (x, y) from x = 0 to `limit`, y interpolated at `limit`."""
    keep = int(np.searchsorted(x, limit, side="right"))
    xs, ys = x[:keep], y[:keep]
    if keep < len(x) and xs[-1] < limit:
        x0, x1, y0, y1 = x[keep - 1], x[keep], y[keep - 1], y[keep]
        xs = np.r_[xs, limit]
        ys = np.r_[ys, y0 + (y1 - y0) * (limit - x0) / (x1 - x0)]
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2))


def error_map(x: torch.Tensor, x_hat: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, 3, H, W) images and reconstructions -> (B, H, W) anomaly maps: squared error averaged over channels,
    smoothed with a Gaussian of `sigma` pixels (none when sigma is 0)."""
    error = (x.float() - x_hat.float()).pow(2).mean(1, keepdim=True)
    return gaussian_blur(error, sigma)[:, 0]


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian smoothing of (B, C, H, W), truncated at 4 sigma, edges reflected (scipy.ndimage's mode
    "reflect": the edge pixel repeated), on the tensor's own device."""
    radius = int(4.0 * sigma + 0.5)  # scipy's truncate=4 radius
    if sigma <= 0 or radius == 0:
        return images
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    out = images
    for dim in (2, 3):
        out = out.index_select(dim, _reflect_index(out.shape[dim], radius, images.device))
        shape = (channels, 1, 2 * radius + 1, 1) if dim == 2 else (channels, 1, 1, 2 * radius + 1)
        out = F.conv2d(out, kernel.view(1, 1, *shape[2:]).expand(shape).contiguous(), groups=channels)
    return out


def _reflect_index(size: int, radius: int, device: torch.device) -> torch.Tensor:
    """Indices of a row of `size` padded by `radius` on each side, scipy's "reflect" (d c b a | a b c d | d c b a)."""
    index = torch.arange(-radius, size + radius, device=device)
    period = 2 * size
    index = torch.remainder(index, period)
    return torch.where(index >= size, period - 1 - index, index)
