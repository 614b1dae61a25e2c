"""The embedded synthetic dataset: shapes, determinism, resolution independence, masks that mark what changed."""

from __future__ import annotations

import ast
import pathlib
import time

import numpy as np
import pytest
from PIL import Image

from ssagan_core.data import GOOD, defects, scenes, synthetic
from ssagan_core.data.synthetic import (
    SYNTHETIC_CATEGORIES,
    SYNTHETIC_DEFECTS,
    SYNTHETIC_OBJECTS,
    make_synthetic_category,
    render_images,
    write_mvtec_tree,
)

N_KINDS = len(SYNTHETIC_DEFECTS)


def _dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    """Grow a boolean (H, W) mask by `steps` pixels (4-neighbourhood)."""
    mask = mask.copy()
    for _ in range(steps):
        grown = mask.copy()
        grown[1:] |= mask[:-1]
        grown[:-1] |= mask[1:]
        grown[:, 1:] |= mask[:, :-1]
        grown[:, :-1] |= mask[:, 1:]
        mask = grown
    return mask


def test_render_images_layout() -> None:
    s = render_images("weave", 32, n_good=3, n_defective=N_KINDS, seed=0, split="test")
    assert s.images.shape == (3 + N_KINDS, 3, 32, 32) and s.images.dtype == np.uint8
    assert s.masks is not None and s.masks.shape == (3 + N_KINDS, 32, 32) and s.masks.dtype == np.uint8
    assert s.labels.dtype == np.int64 and s.labels.tolist() == [0] * 3 + [1] * N_KINDS
    assert s.defects == (GOOD,) * 3 + SYNTHETIC_DEFECTS  # good first, then the kinds in turn
    assert s.paths[0] == "synthetic://weave/test/0_good"
    assert s.paths[3] == f"synthetic://weave/test/3_{SYNTHETIC_DEFECTS[0]}"
    assert len(render_images("wood", 16, 0, 0, 0, "test")) == 0


@pytest.mark.parametrize("category", SYNTHETIC_CATEGORIES)
def test_masks_exactly_for_defective_images(category: str) -> None:
    s = render_images(category, 64, n_good=3, n_defective=2 * N_KINDS, seed=1, split="test")
    area = s.masks.sum(axis=(1, 2))
    assert (area[:3] == 0).all()
    assert (area[3:] > 0).all() and (area[3:] < 0.08 * 64 * 64).all()  # a defect, not the whole image
    assert set(s.defects[3:]) == set(SYNTHETIC_DEFECTS)
    assert set(np.unique(s.masks).tolist()) == {0, 1}


@pytest.mark.parametrize("category", SYNTHETIC_CATEGORIES)
def test_defects_are_visible_at_32_px(category: str) -> None:
    """Every defect covers at least 1% of a 32 px image (about 10 pixels): a brief training run can see it."""
    s = render_images(category, 32, n_good=0, n_defective=4 * N_KINDS, seed=4, split="test")
    area = s.masks.sum(axis=(1, 2))
    assert (area >= 0.01 * 32 * 32).all(), list(zip(s.defects, area.tolist(), strict=True))


@pytest.mark.parametrize("category", SYNTHETIC_CATEGORIES)
def test_mask_covers_what_the_defect_changed(category: str) -> None:
    """Render each defective scene again without its defect (same seed streams): the pixels that differ are the
    masked ones, and they differ far more than the sensor noise."""
    plan = list(synthetic._plan(category, 0, 2 * N_KINDS, seed=2, split="test"))
    for defect, entropy in plan:
        image, mask = synthetic._render_one(category, 64, entropy, defect)
        clean, clean_mask = synthetic._render_one(category, 64, entropy, GOOD)
        assert clean_mask.sum() == 0
        change = np.abs(image.astype(np.int16) - clean).mean(axis=0)  # (H, W) grey levels
        inside = mask.astype(bool)
        assert change[inside].mean() > 12 * synthetic.NOISE_SIGMA * 255, (defect, change[inside].mean())
        # Beyond the soft fringe (an anti-aliased edge pixel, a stain's fading rim), nothing outside the mask changed.
        assert change[~_dilate(inside, 3)].max() == 0, defect


@pytest.mark.parametrize("category", SYNTHETIC_OBJECTS)
def test_normal_images_vary_modestly(category: str) -> None:
    """Two normal scenes differ (a model must learn the distribution), but little: the part sits in a fixture under
    controlled light, so whole-image differences stay far below what a defect changes locally."""
    s = render_images(category, 64, n_good=2, n_defective=0, seed=0, split="train")
    a, b = s.images.astype(np.int16)
    assert np.abs(a - b).mean() > 1
    assert np.abs(a - b).mean() < 12


def test_deterministic_per_seed_and_split() -> None:
    a = render_images("nut", 32, 2, 3, seed=5, split="train")
    b = render_images("nut", 32, 2, 3, seed=5, split="train")
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.masks, b.masks)
    assert not np.array_equal(a.images, render_images("nut", 32, 2, 3, seed=6, split="train").images)
    assert not np.array_equal(a.images, render_images("nut", 32, 2, 3, seed=5, split="test").images)
    # Good and defective images are numbered separately: more normals leave the defective scenes unchanged.
    c = render_images("nut", 32, 4, 3, seed=5, split="train")
    np.testing.assert_array_equal(a.images[2:], c.images[4:])


@pytest.mark.parametrize("category", SYNTHETIC_CATEGORIES)
def test_every_size_renders_quickly(category: str) -> None:
    for size in (16, 32, 64, 128, 256):
        start = time.perf_counter()
        s = render_images(category, size, 1, N_KINDS, seed=0, split="test")
        assert s.images.shape == (1 + N_KINDS, 3, size, size)
        assert (s.masks[1:].sum(axis=(1, 2)) > 0).all(), size
        assert time.perf_counter() - start < 3.0, size  # ~0.1 s at 256 px; generous for loaded CI machines


@pytest.mark.parametrize("category", SYNTHETIC_CATEGORIES)
def test_resolution_independent(category: str) -> None:
    """A 128 px render block-averaged to 32 px matches the 32 px render: the same scene, only finer."""
    hi = render_images(category, 128, 2, N_KINDS, seed=3, split="test")
    lo = render_images(category, 32, 2, N_KINDS, seed=3, split="test")
    n = len(lo)
    down = hi.images.reshape(n, 3, 32, 4, 32, 4).astype(np.float64).mean(axis=(3, 5))
    assert np.abs(down - lo.images).mean() < 0.03 * 255
    mask_down = hi.masks.reshape(n, 32, 4, 32, 4).mean(axis=(2, 4)) > 0.5
    overlap = (mask_down & lo.masks.astype(bool)).sum(axis=(1, 2))
    assert (overlap[2:] > 0).all()  # the defect is in the same place


def test_make_synthetic_category() -> None:
    data = make_synthetic_category("wood", image_size=32, seed=0, n_train=20, n_test_good=3, n_test_defective=5)
    assert data.dataset == "synthetic" and data.category == "wood" and data.image_size == 32
    assert len(data.train) == 18 and int(data.train.labels.sum()) == 0
    assert data.val.has_both_classes
    assert data.test.labels.tolist() == [0] * 3 + [1] * 5
    # Train and test are different scenes (the split goes into the seeds).
    train = render_images("wood", 32, 20, 0, seed=0, split="train").images
    assert not any(np.array_equal(t, g) for t in data.test.images[:3] for g in train)


def test_write_mvtec_tree(tmp_path: pathlib.Path) -> None:
    root = write_mvtec_tree(
        tmp_path / "mvtec", ("weave", "nut"), image_size=32, seed=0, n_train=2, n_test_good=1, n_test_defective=6
    )
    assert root == tmp_path / "mvtec"
    for category in ("weave", "nut"):
        base = root / category
        assert sorted(p.name for p in (base / "train" / "good").iterdir()) == ["000.png", "001.png"]
        assert sorted(p.name for p in (base / "test").iterdir()) == sorted((GOOD, *SYNTHETIC_DEFECTS))
        assert sorted(p.name for p in (base / "ground_truth").iterdir()) == sorted(SYNTHETIC_DEFECTS)
        assert sorted(p.name for p in (base / "test" / SYNTHETIC_DEFECTS[0]).iterdir()) == ["000.png", "001.png"]
        for defect in SYNTHETIC_DEFECTS:
            with Image.open(base / "test" / defect / "000.png") as image:
                assert image.mode == "RGB" and image.size == (32, 32)
            with Image.open(base / "ground_truth" / defect / "000_mask.png") as mask:
                assert mask.mode == "L" and mask.size == (32, 32)
                values = np.asarray(mask)
            assert set(np.unique(values).tolist()) == {0, 255}
        # The files hold the same scenes as render_images.
        with Image.open(base / "train" / "good" / "001.png") as image:
            written = np.asarray(image).transpose(2, 0, 1)
        np.testing.assert_array_equal(written, render_images(category, 32, 2, 0, 0, "train").images[1])


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: render_images("carpet", 32, 1, 1, 0, "test"), "category"),
        (lambda: render_images("weave", 8, 1, 1, 0, "test"), "image_size"),
        (lambda: render_images("weave", 5000, 1, 1, 0, "test"), "image_size"),
        (lambda: render_images("weave", 32, -1, 1, 0, "test"), "n_good"),
        (lambda: render_images("weave", 32, 1, -2, 0, "test"), "n_defective"),
        (lambda: render_images("weave", 32, 1, 1, -1, "test"), "seed"),
        (lambda: render_images("weave", 32, 1, 1, 0, ""), "split"),
        (lambda: make_synthetic_category("weave", 32, n_train=0), "n_train"),
        (lambda: make_synthetic_category("weave", 32, n_test_defective=-1), "n_test_defective"),
        (lambda: write_mvtec_tree("/nonexistent", ("weave", "tile")), "category"),
    ],
)
def test_bad_inputs_name_the_field(call, field: str) -> None:
    with pytest.raises(ValueError, match=field) as error:
        call()
    if field == "category":
        assert all(c in str(error.value) for c in SYNTHETIC_CATEGORIES)  # lists the choices


def test_module_needs_only_numpy_and_pillow() -> None:
    imported = set()
    for module in (synthetic, scenes, defects):
        for node in ast.walk(ast.parse(pathlib.Path(module.__file__).read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    assert not imported & {"torch", "scipy", "cv2", "skimage"}
