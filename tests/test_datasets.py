"""Datasets on disk: miniature MVTec, KolektorSDD, folder and ELPV trees made with Pillow, loaded for real.

Counts, labels, masks aligned with their images, split sizes and determinism, the decode-once cache (hit, invalidated,
never half-written) and a one-line `DatasetError` naming the path for each bad input.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import sys
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from ssagan_core.data import (
    GOOD,
    DataConfig,
    DatasetError,
    layouts,
    load_category,
    resolve_categories,
    validation,
    write_mvtec_tree,
)
from ssagan_core.data import cache as image_cache

SIZE = 16  # model input side: sources are 32 px (2x down) or non-square strips
RECT = (8, 12, 20, 24)  # (top, left, bottom, right) of the bright defect in a 32 px source image


def _picture(h: int, w: int, seed: int, rect: tuple[int, int, int, int] | None = None, grey: bool = False):
    """A dark image with a per-image level (so images differ), and a bright rectangle where the defect is."""
    level = 20 + 3 * seed
    pixels = np.full((h, w) if grey else (h, w, 3), level, np.uint8)
    if not grey:
        pixels[..., 1] = level // 2  # colour: the channels differ
    mask = np.zeros((h, w), np.uint8)
    if rect is not None:
        top, left, bottom, right = rect
        pixels[top:bottom, left:right] = 250
        mask[top:bottom, left:right] = 255
    return pixels, mask


def _save(path: pathlib.Path, pixels: np.ndarray) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def _mvtec_category(root: pathlib.Path, category: str, grey: bool, n_train: int = 5) -> None:
    base = root / category
    for i in range(n_train):
        _save(base / "train" / "good" / f"{i:03d}.png", _picture(32, 32, i, grey=grey)[0])
    (base / "train" / "good" / "._000.png").write_bytes(b"\x00\x05\x16\x07")  # macOS metadata: skipped
    (base / "train" / "good" / "Thumbs.db").write_bytes(b"\x00")  # not an image extension: skipped
    for i in range(2):
        _save(base / "test" / "good" / f"{i:03d}.png", _picture(32, 32, 10 + i, grey=grey)[0])
    for defect, n in (("crack", 2), ("hole", 1)):
        for i in range(n):
            pixels, mask = _picture(32, 32, 20 + i, RECT, grey=grey)
            _save(base / "test" / defect / f"{i:03d}.png", pixels)
            _save(base / "ground_truth" / defect / f"{i:03d}_mask.png", mask)


@pytest.fixture
def mvtec(tmp_path: pathlib.Path) -> pathlib.Path:
    """bottle (colour) and grid (grey): 5 train, 2 good test, 3 defective test (crack x2, hole x1) with masks."""
    root = tmp_path / "mvtec"
    _mvtec_category(root, "bottle", grey=False)
    _mvtec_category(root, "grid", grey=True)
    (root / "license.txt").write_text("not a category")
    return root


@pytest.fixture
def kolektor(tmp_path: pathlib.Path) -> pathlib.Path:
    """Four commutators of 4 grey 20 x 50 strips (JPEG) with .bmp masks; kos01/Part1 and kos02/Part3 defective,
    kos03 and kos04 clean."""
    return _kolektor_tree(tmp_path / "kolektor", {"kos01": {1}, "kos02": {3}, "kos03": set(), "kos04": set()})


def _kolektor_tree(root: pathlib.Path, defects: dict[str, set[int]], parts: int = 4) -> pathlib.Path:
    """A KolektorSDD tree: per commutator (`kosNN` -> its defective parts) `parts` grey 20 x 50 strips with masks."""
    for commutator, defective in defects.items():
        for k in range(parts):
            pixels, mask = _picture(50, 20, k, (30, 4, 42, 16) if k in defective else None, grey=True)
            _save(root / commutator / f"Part{k}.jpg", pixels)
            _save(root / commutator / f"Part{k}_label.bmp", mask)
    return root


def _commutators(paths: tuple[str, ...], root: pathlib.Path) -> set[str]:
    """The kosNN folders of `paths` (validation defects, `<path>#val-<kind>`, count as their image's)."""
    return {pathlib.Path(p.split("#")[0]).relative_to(root.resolve()).parts[0] for p in paths}


@pytest.fixture
def folder(tmp_path: pathlib.Path) -> pathlib.Path:
    """Skip-GANomaly layout of 48 x 24 (non-square) colour images; the abnormal ones have masks in ground_truth."""
    root = tmp_path / "my_parts"
    for i in range(4):
        _save(root / "train" / "0.normal" / f"n{i}.png", _picture(24, 48, i)[0])
    _save(root / "test" / "0.normal" / "n9.jpg", _picture(24, 48, 9)[0])
    for i in range(2):
        pixels, mask = _picture(24, 48, 5 + i, (4, 24, 20, 44))
        _save(root / "test" / "1.abnormal" / f"a{i}.png", pixels)
        _save(root / "ground_truth" / "1.abnormal" / f"a{i}.png", mask)
    return root


def _cfg(kind: str, root: pathlib.Path | None, tmp_path: pathlib.Path, **kw) -> DataConfig:
    return DataConfig(
        kind=kind, root=None if root is None else str(root), image_size=SIZE, cache_dir=str(tmp_path / "cache"), **kw
    )


def _entries(tmp_path: pathlib.Path) -> list[str]:
    """Everything in the cache, temporary folders included."""
    cache = tmp_path / "cache"
    return sorted(str(p.relative_to(cache)) for p in cache.glob("*/*")) if cache.exists() else []


def _assert_masks_aligned(images: np.ndarray, masks: np.ndarray, exact: bool = False) -> None:
    """The masked pixels are the bright defect: the mask covers what is brighter than half-way (up to the pixels a
    resize blends at the defect's edge, unless `exact`)."""
    brightness = images.astype(np.float32).mean(axis=1)  # (N, H, W)
    for image, mask in zip(brightness, masks, strict=True):
        inside = mask.astype(bool)
        bright = image > (image.max() + image.min()) / 2
        overlap = (bright & inside).sum() / (bright | inside).sum()
        assert overlap == 1 if exact else overlap > 0.6, overlap
        assert image[inside].mean() > image[~inside].mean() + 100


# ---------------------------------------------------------------------------------------------------------------------
# MVTec AD


def test_mvtec_counts_labels_masks_and_paths(mvtec: pathlib.Path, tmp_path: pathlib.Path) -> None:
    # val_min_images 0: the validation split is val_fraction of the 5 normals alone, not half of them.
    data = load_category(_cfg("mvtec", mvtec, tmp_path, val_fraction=0.2, val_min_images=0), "bottle")
    assert (data.dataset, data.category, data.image_size) == ("mvtec", "bottle", SIZE)
    assert len(data.train) == 4 and data.train.masks is None  # 5 normal images, 1 held out for validation
    assert len(data.val) == 2 and data.val.labels.tolist() == [0, 1]  # the held-out normal and its synthetic defect
    test = data.test
    assert test.images.shape == (5, 3, SIZE, SIZE) and test.images.dtype == np.uint8
    assert test.labels.tolist() == [0, 0, 1, 1, 1]
    assert test.defects == (GOOD, GOOD, "crack", "crack", "hole")
    assert test.paths[2] == str(mvtec.resolve() / "bottle" / "test" / "crack" / "000.png")
    assert all(os.path.isabs(p) for p in test.paths + data.train.paths)
    assert test.masks.shape == (5, SIZE, SIZE) and set(np.unique(test.masks)) == {0, 1}
    assert test.masks[:2].sum() == 0  # good images: empty masks
    _assert_masks_aligned(test.images[2:], test.masks[2:], exact=True)  # a 2x downscale of an even-aligned defect
    # Nothing refers to the cache's read-only memory maps.
    for array in (data.train.images, data.val.images, test.images, test.masks):
        assert not isinstance(array, np.memmap) and array.flags.writeable


def test_grey_images_become_three_equal_channels(mvtec: pathlib.Path, tmp_path: pathlib.Path) -> None:
    data = load_category(_cfg("mvtec", mvtec, tmp_path), "grid")
    images = data.test.images
    assert images.shape[1] == 3 and (images[:, 0] == images[:, 1]).all() and (images[:, 1] == images[:, 2]).all()
    colour = load_category(_cfg("mvtec", mvtec, tmp_path), "bottle").test.images
    assert (colour[:, 0] != colour[:, 1]).any()


def test_all_expands_to_the_categories_on_disk(mvtec: pathlib.Path, tmp_path: pathlib.Path) -> None:
    assert resolve_categories(_cfg("mvtec", mvtec, tmp_path)) == ("bottle", "grid")  # license.txt is no category
    assert resolve_categories(_cfg("mvtec", mvtec, tmp_path, categories=("grid",))) == ("grid",)
    with pytest.raises(DatasetError, match=r"'carpet' not found under .*mvtec; available: bottle, grid"):
        resolve_categories(_cfg("mvtec", mvtec, tmp_path, categories=("grid", "carpet")))
    with pytest.raises(DatasetError, match=r"'carpet' not found .*available: bottle, grid"):
        load_category(_cfg("mvtec", mvtec, tmp_path), "carpet")
    assert "metal_nut" in layouts.MVTEC_CATEGORIES and len(layouts.MVTEC_CATEGORIES) == 15


def test_root_expands_user_and_variables(mvtec: pathlib.Path, tmp_path: pathlib.Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    assert resolve_categories(_cfg("mvtec", "~/mvtec", tmp_path)) == ("bottle", "grid")
    assert resolve_categories(_cfg("mvtec", "${DATA_DIR}/mvtec", tmp_path)) == ("bottle", "grid")
    monkeypatch.delenv("DATA_DIR")
    with pytest.raises(DatasetError, match=r"dataset.root: environment variable DATA_DIR is not set"):
        resolve_categories(_cfg("mvtec", "${DATA_DIR}/mvtec", tmp_path))


def test_a_category_without_ground_truth_has_no_masks(mvtec: pathlib.Path, tmp_path: pathlib.Path) -> None:
    shutil.rmtree(mvtec / "grid" / "ground_truth")
    test = load_category(_cfg("mvtec", mvtec, tmp_path), "grid").test
    assert test.masks is None and test.labels.tolist() == [0, 0, 1, 1, 1]


# ---------------------------------------------------------------------------------------------------------------------
# The validation split and the decode-once cache


def test_split_sizes_and_determinism(mvtec: pathlib.Path, tmp_path: pathlib.Path) -> None:
    cfg = _cfg("mvtec", mvtec, tmp_path, val_fraction=0.4, split_seed=3)
    a, b = load_category(cfg, "bottle"), load_category(cfg, "bottle")
    assert (len(a.train), len(a.val)) == (3, 4)  # 2 of 5 normals held out, each with a synthetic-defect copy
    assert a.train.paths == b.train.paths and a.val.paths == b.val.paths
    assert np.array_equal(a.val.images, b.val.images)
    held_out = {p for p in a.val.paths if "#" not in p}
    assert held_out.isdisjoint(a.train.paths) and len(held_out | set(a.train.paths)) == 5
    splits = {load_category(replace(cfg, split_seed=s), "bottle").train.paths for s in range(6)}
    assert len(splits) > 1  # the seed chooses the held-out images


def _count_decodes(monkeypatch) -> list[int]:
    calls: list[int] = []
    decode = image_cache.decode_layout

    def counting(layout, *args):
        calls.append(len(layout.sources))
        return decode(layout, *args)

    monkeypatch.setattr(image_cache, "decode_layout", counting)
    return calls


def test_cache_is_hit_the_second_time(mvtec: pathlib.Path, tmp_path: pathlib.Path, monkeypatch) -> None:
    calls = _count_decodes(monkeypatch)
    cfg = _cfg("mvtec", mvtec, tmp_path)
    first = load_category(cfg, "bottle")
    second = load_category(cfg, "bottle")
    assert calls == [10]  # 5 train + 5 test images, decoded once
    assert np.array_equal(first.test.images, second.test.images) and np.array_equal(first.test.masks, second.test.masks)
    assert np.array_equal(first.train.images, second.train.images)
    for array in (second.train.images, second.val.images, second.test.images, second.test.masks):
        assert not isinstance(array, np.memmap) and array.flags.writeable  # copies, not the cache's memory map
    (entry,) = _entries(tmp_path)
    assert entry.startswith(f"mvtec/bottle-{SIZE}px-stretch-")
    load_category(replace(cfg, image_size=32), "bottle")  # another size: another entry
    assert calls == [10, 10] and len(_entries(tmp_path)) == 2


def test_cache_is_invalidated_when_a_file_changes(mvtec: pathlib.Path, tmp_path: pathlib.Path, monkeypatch) -> None:
    calls = _count_decodes(monkeypatch)
    cfg = _cfg("mvtec", mvtec, tmp_path)
    before = load_category(cfg, "bottle").test
    _save(mvtec / "bottle" / "test" / "good" / "000.png", np.full((32, 32, 3), 200, np.uint8))
    after = load_category(cfg, "bottle").test
    assert calls == [10, 10]
    assert before.images[0].max() < 100 and (after.images[0] == 200).all()
    assert len(_entries(tmp_path)) == 1  # the stale entry is deleted
    _save(mvtec / "bottle" / "train" / "good" / "005.png", _picture(32, 32, 5)[0])  # an added file
    data = load_category(cfg, "bottle")
    assert calls == [10, 10, 11] and len(data.train) + len(data.val) // 2 == 6


def test_a_failed_decode_writes_nothing(mvtec: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """The last file of the category is truncated: every other image decoded, and still no entry."""
    last = mvtec / "bottle" / "test" / "hole" / "000.png"
    last.write_bytes(last.read_bytes()[:-30])
    with pytest.raises(DatasetError, match="cannot read image"):
        load_category(_cfg("mvtec", mvtec, tmp_path), "bottle")
    assert _entries(tmp_path) == []


def test_a_failed_cache_write_leaves_nothing_and_still_loads(
    mvtec: pathlib.Path, tmp_path: pathlib.Path, monkeypatch
) -> None:
    save = np.save

    def save_images_then_fail(path, array):
        if str(path).endswith("masks.npy"):
            raise OSError(28, "No space left on device")
        save(path, array)

    monkeypatch.setattr(image_cache.np, "save", save_images_then_fail)
    with pytest.warns(UserWarning, match="could not write the image cache"):
        data = load_category(_cfg("mvtec", mvtec, tmp_path), "bottle")
    assert len(data.test) == 5
    assert _entries(tmp_path) == []  # neither an entry nor its temporary folder


def test_a_corrupt_cache_entry_is_rebuilt(mvtec: pathlib.Path, tmp_path: pathlib.Path, monkeypatch) -> None:
    cfg = _cfg("mvtec", mvtec, tmp_path)
    first = load_category(cfg, "bottle").test.images
    (entry,) = _entries(tmp_path)
    images = tmp_path / "cache" / entry / "images.npy"
    images.write_bytes(images.read_bytes()[:200])
    calls = _count_decodes(monkeypatch)
    with pytest.warns(UserWarning, match="unreadable"):
        again = load_category(cfg, "bottle").test.images
    assert calls == [10] and np.array_equal(first, again)


# ---------------------------------------------------------------------------------------------------------------------
# KolektorSDD, folder layout, ELPV


def test_kolektor_protocol(kolektor: pathlib.Path, tmp_path: pathlib.Path) -> None:
    cfg = _cfg("kolektor", kolektor, tmp_path, val_fraction=0.2)
    assert resolve_categories(cfg) == ("kolektor",)
    data = load_category(cfg, "kolektor")
    test = data.test
    # 16 strips of 4 commutators, 2 with a defect in their .bmp mask: both defective ones are test images, and so are
    # the 6 good surfaces of their commutators; the two clean commutators train (one of them validates).
    assert test.labels.sum() == 2 and len(test) == 2 + 6
    defective = {
        pathlib.Path(p).relative_to(kolektor.resolve()).as_posix()
        for p, label in zip(test.paths, test.labels, strict=True)
        if label
    }
    assert defective == {"kos01/Part1.jpg", "kos02/Part3.jpg"}
    assert set(test.defects) == {GOOD, "defect"} and len(data.train) + len(data.val) // 2 == 8
    assert int(data.train.labels.sum()) == 0
    _assert_masks_aligned(test.images[test.labels == 1], test.masks[test.labels == 1])
    assert test.masks[test.labels == 0].sum() == 0
    assert load_category(cfg, "kolektor").test.paths == test.paths  # deterministic
    val_commutators = set()
    for seed in range(8):  # the seed picks the validation commutator; the defective ones are always tested
        other = load_category(replace(cfg, split_seed=seed), "kolektor")
        assert other.test.labels.sum() == 2 and len(other.test) == 8
        val_commutators |= _commutators(other.val.paths, kolektor)
    assert val_commutators == {"kos03", "kos04"}


def test_kolektor_label_comes_from_the_full_resolution_mask(kolektor: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """A one-pixel defect vanishes at the model's size; the image is still defective."""
    mask = np.zeros((50, 20), np.uint8)
    mask[25, 9] = 255
    _save(kolektor / "kos01" / "Part0_label.bmp", mask)
    test = load_category(_cfg("kolektor", kolektor, tmp_path), "kolektor").test
    i = test.paths.index(str(kolektor.resolve() / "kos01" / "Part0.jpg"))
    assert test.labels[i] == 1 and test.defects[i] == "defect" and test.masks[i].sum() == 0
    assert test.labels.sum() == 3


@pytest.mark.parametrize("resize", ["stretch", "pad"])
def test_folder_layout_non_square_images(folder: pathlib.Path, tmp_path: pathlib.Path, resize: str) -> None:
    cfg = _cfg("folder", folder, tmp_path, resize=resize, val_fraction=0.25, val_min_images=0)
    assert resolve_categories(cfg) == ("my_parts",)
    data = load_category(cfg, "my_parts")
    assert (len(data.train), len(data.val), len(data.test)) == (3, 2, 3)
    assert data.test.labels.tolist() == [0, 1, 1] and data.test.defects == (GOOD, "defect", "defect")
    _assert_masks_aligned(data.test.images[1:], data.test.masks[1:])
    image = data.test.images[0]  # 48 x 24 source: stretched to fill, or 16 x 8 in the middle, edge rows repeated
    assert image.shape == (3, SIZE, SIZE)
    if resize == "pad":
        assert (data.test.masks[1:, :4].sum(), data.test.masks[1:, 12:].sum()) == (0, 0)  # no defect in the padding
        assert (data.test.images[1:, :, :4] == data.test.images[1:, :, 4:5]).all()  # repeats the edge row
    else:
        # Rows 4..19 of 24 and columns 24..43 of 48, sampled at pixel centres: rows 3..12 and columns 8..14 of 16.
        assert data.test.masks[1:, 3:13, 8:15].all() and data.test.masks[1:].sum() == 2 * 10 * 7


def test_folder_masks_are_optional(folder: pathlib.Path, tmp_path: pathlib.Path) -> None:
    shutil.rmtree(folder / "ground_truth")
    test = load_category(_cfg("folder", folder, tmp_path), "my_parts").test
    assert test.masks is None and test.labels.tolist() == [0, 1, 1]


def test_sixteen_bit_images_are_scaled_to_eight(folder: pathlib.Path, tmp_path: pathlib.Path) -> None:
    deep = np.full((24, 48), 40000, np.uint16)
    Image.fromarray(deep).save(folder / "test" / "0.normal" / "n9.png")
    (folder / "test" / "0.normal" / "n9.jpg").unlink()
    test = load_category(_cfg("folder", folder, tmp_path), "my_parts").test
    assert (test.images[0] == 40000 // 257).all()


def _elpv_subset(tmp_path: pathlib.Path, per_grade: int = 3) -> pathlib.Path:
    """A copy of a few real ELPV cells of each type and grade, with their own labels.csv."""
    package = layouts.elpv_root(None)
    root = tmp_path / "elpv"
    (root / "images").mkdir(parents=True)
    kept, counts = [], {}
    for line in (package / "labels.csv").read_text().splitlines():
        image, p, cell_type = line.split()
        key = (cell_type, p)
        if counts.get(key, 0) < per_grade:
            counts[key] = counts.get(key, 0) + 1
            shutil.copy(package / image, root / image)
            kept.append(line)
    (root / "labels.csv").write_text("\n".join(kept) + "\n")
    return root


def test_elpv_real_cells(tmp_path: pathlib.Path) -> None:
    package = _cfg("elpv", None, tmp_path)
    assert resolve_categories(package) == ("mono", "poly")
    mono = layouts.read_elpv(layouts.elpv_root(None), "mono")  # the whole package, listed only
    defects = [s.defect for s in mono.sources]
    assert (defects.count(GOOD), defects.count("p0.67"), defects.count("p1.0")) == (588, 56, 313)

    root = _elpv_subset(tmp_path)  # 3 cells per (type, grade)
    data = load_category(_cfg("elpv", root, tmp_path, val_fraction=0.5), "poly")
    assert data.test.labels.sum() == 6 and len(data.test) == 7  # p0.67 + p1.0 defective, 1 of 3 good cells
    assert sorted(set(data.test.defects)) == [GOOD, "p0.67", "p1.0"] and data.test.masks is None
    assert len(data.train) == 1 and all(p.startswith(str(root.resolve())) for p in data.test.paths)
    assert (data.test.images[:, 0] == data.test.images[:, 2]).all()  # grey cells, 3 channels
    assert data.test.images.std() > 10  # real pictures, not a constant


def test_elpv_without_the_package(tmp_path: pathlib.Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "elpv_dataset", None)  # import elpv_dataset now raises ImportError
    with pytest.raises(DatasetError) as error:
        resolve_categories(_cfg("elpv", None, tmp_path))
    assert str(error.value) == (
        "dataset.kind: 'elpv' needs the optional package elpv-dataset: pip install 'ssagan-ablate[elpv]'"
    )


# ---------------------------------------------------------------------------------------------------------------------
# Splits by group (a commutator on one side) and the validation minimum


@pytest.mark.parametrize(
    ("defects", "every_defect_tested"),
    [
        # KolektorSDD v1 as published: a defect on every commutator (here 10 of 4 surfaces, 1 or 2 defective).
        ({f"kos{i:02d}": {i % 4} | ({(i + 1) % 4} if i % 3 == 0 else set()) for i in range(1, 11)}, False),
        # Some clean commutators: every defective one is tested whole.
        ({**{f"kos{i:02d}": {i % 4} for i in range(1, 4)}, **{f"kos{i:02d}": set() for i in range(4, 14)}}, True),
    ],
    ids=["every-commutator-defective", "some-clean"],
)
def test_kolektor_keeps_each_commutator_on_one_side(
    tmp_path: pathlib.Path, defects: dict[str, set[int]], every_defect_tested: bool
) -> None:
    root = _kolektor_tree(tmp_path / "kolektor", defects)
    n_good = sum(4 - len(d) for d in defects.values())
    test_sets = set()
    for seed in range(5):
        data = load_category(_cfg("kolektor", root, tmp_path, split_seed=seed), "kolektor")
        sides = {
            "train": _commutators(data.train.paths, root),
            "val": _commutators(data.val.paths, root),
            "test": _commutators(data.test.paths, root),
        }
        assert sides["train"] and sides["val"] and sides["test"]
        assert sides["train"].isdisjoint(sides["val"]) and sides["train"].isdisjoint(sides["test"])
        assert sides["val"].isdisjoint(sides["test"])
        # A test commutator is tested whole: its defects and all its good surfaces.
        assert len(data.test) == sum(4 for c in sides["test"])
        assert data.test.labels.sum() == sum(len(defects[c]) for c in sides["test"])
        # Training keeps at least half of the good surfaces (validation normals included).
        assert len(data.train) + len(data.val) // 2 >= n_good / 2
        tested = {c for c, d in defects.items() if d}
        assert (tested <= sides["test"]) is every_defect_tested
        test_sets.add(frozenset(sides["test"]))
    assert len(test_sets) > 1  # the seed chooses the sides


def test_validation_size_rule() -> None:
    val_size = validation.val_size
    assert val_size(5, 0.2, 20) == 2 and val_size(5, 0.2, 0) == 1  # small: the minimum stops at half
    assert val_size(30, 0.1, 20) == 15 and val_size(60, 0.1, 20) == 20  # the minimum, up to half
    assert val_size(400, 0.1, 20) == 40 and val_size(400, 0.1, 0) == 40  # large: the fraction
    assert val_size(10, 0.6, 20) == 6  # a larger fraction is not capped
    assert val_size(1, 0.5, 20) == 0 and val_size(2, 0.1, 20) == 1  # one image always stays for training


@pytest.mark.parametrize(("n_train", "n_val_normal"), [(8, 4), (30, 15), (100, 20), (300, 30)])
def test_validation_takes_at_least_val_min_images(n_train: int, n_val_normal: int) -> None:
    cfg = DataConfig(image_size=16, n_train=n_train, n_test_good=2, n_test_defective=2)
    data = load_category(cfg, "weave")
    assert int((data.val.labels == 0).sum()) == n_val_normal and len(data.val) == 2 * n_val_normal
    assert len(data.train) == n_train - n_val_normal


def _split_digest(data, tmp_path: pathlib.Path) -> str:
    """A digest of which images are in which split, in which order (paths made relative to `tmp_path`)."""
    digest = hashlib.sha256()
    for split in (data.train, data.val, data.test):
        paths = tuple(p.replace(str(tmp_path.resolve()), "") for p in split.paths)
        digest.update(repr((paths, split.labels.tolist(), split.defects)).encode())
    return digest.hexdigest()[:16]


def test_splits_without_groups_are_unchanged(tmp_path: pathlib.Path) -> None:
    """synthetic, mvtec and elpv split exactly as before groups and `val_min_images` existed (digests taken with the
    code before them); `val_min_images` 0 is the old rule, and the synthetic default (200 x 0.1 = 20) is unchanged."""
    digests = {}
    for seed in (0, 1, 2):
        cfg = DataConfig(
            image_size=16, n_train=30, n_test_good=3, n_test_defective=3, val_fraction=0.2, split_seed=seed,
            val_min_images=0,
        )  # fmt: skip
        digests[f"synthetic-{seed}"] = _split_digest(load_category(cfg, "nut"), tmp_path)
    digests["synthetic-default"] = _split_digest(load_category(DataConfig(image_size=16), "nut"), tmp_path)
    write_mvtec_tree(tmp_path / "mvtec", ["nut"], image_size=32, n_train=12, n_test_good=3, n_test_defective=3)
    elpv = _elpv_subset(tmp_path, per_grade=6)
    for seed in (0, 1, 2):
        mvtec = _cfg("mvtec", tmp_path / "mvtec", tmp_path, val_fraction=0.25, split_seed=seed, val_min_images=0)
        digests[f"mvtec-{seed}"] = _split_digest(load_category(mvtec, "nut"), tmp_path)
        cfg = _cfg("elpv", elpv, tmp_path, val_fraction=0.3, split_seed=seed, val_min_images=0)
        digests[f"elpv-{seed}"] = _split_digest(load_category(cfg, "mono"), tmp_path)
    assert digests == {
        "synthetic-0": "f47f799e4218c59a",
        "synthetic-1": "58f4a661b185430c",
        "synthetic-2": "448b26503657e88b",
        "synthetic-default": "b7e204a32de91ef7",
        "mvtec-0": "bc370677ed8bdb0b",
        "mvtec-1": "7c9f22c7e3a5a120",
        "mvtec-2": "d21861934d0ebf06",
        "elpv-0": "8cf2aa0fce654184",
        "elpv-1": "3d4ebdc55b78f2a3",
        "elpv-2": "6c14bb22935b1175",
    }


@pytest.mark.parametrize("value", [-1, 2.5, True, "20", None])
def test_bad_val_min_images(value: object) -> None:
    with pytest.raises(ValueError, match=r"^dataset\.val_min_images: must be an integer >= 0, got ") as error:
        DataConfig(val_min_images=value)
    assert len(str(error.value).splitlines()) == 1


# ---------------------------------------------------------------------------------------------------------------------
# Bad input: a one-line DatasetError naming the path, before anything is cached


def _truncate(path: pathlib.Path) -> pathlib.Path:
    path.write_bytes(path.read_bytes()[:60])
    return path


def _garbage(path: pathlib.Path) -> pathlib.Path:
    path.write_bytes(b"this is not a PNG file at all")
    return path


def _empty(folder: pathlib.Path) -> pathlib.Path:
    for p in folder.iterdir():
        p.unlink()
    return folder


def _remove_defects(test: pathlib.Path) -> pathlib.Path:
    for name in ("crack", "hole"):
        shutil.rmtree(test / name)
    shutil.rmtree(test.parent / "ground_truth")
    return test


def _resized_mask(path: pathlib.Path) -> pathlib.Path:
    return _save(path, np.zeros((30, 32), np.uint8))


def _stray_mask(path: pathlib.Path) -> pathlib.Path:
    return _save(path, np.zeros((32, 32), np.uint8))


def _unmasked_image(path: pathlib.Path) -> pathlib.Path:
    return _save(path, _picture(32, 32, 1, RECT)[0])


BOTTLE = pathlib.Path("bottle")
MVTEC_BAD = {
    # name: (how to break the tree, the path it breaks (relative to the root), what the message says)
    "missing root": (lambda r: shutil.rmtree(r) or r, ".", "does not exist"),
    "empty train/good": (lambda r: _empty(r / "bottle/train/good"), "bottle/train/good", "no images"),
    "no good test images": (lambda r: _empty(r / "bottle/test/good"), "bottle/test/good", "no images"),
    "no defective test images": (lambda r: _remove_defects(r / "bottle/test"), "bottle/test", "no defective"),
    "truncated image": (lambda r: _truncate(r / "bottle/train/good/002.png"), "bottle/train/good/002.png", "truncated"),
    "unreadable image": (lambda r: _garbage(r / "bottle/test/crack/001.png"), "bottle/test/crack/001.png", "cannot"),
    "truncated mask": (
        lambda r: _truncate(r / "bottle/ground_truth/crack/000_mask.png"),
        "bottle/ground_truth/crack/000_mask.png",
        "cannot read image",
    ),
    "mask of another size": (
        lambda r: _resized_mask(r / "bottle/ground_truth/hole/000_mask.png"),
        "bottle/ground_truth/hole/000_mask.png",
        "mask is 32x30 px",
    ),
    "mask with no image": (
        lambda r: _stray_mask(r / "bottle/ground_truth/crack/007_mask.png"),
        "bottle/ground_truth/crack/007_mask.png",
        "mask with no image",
    ),
    "mask of no defect folder": (
        lambda r: _stray_mask(r / "bottle/ground_truth/dent/000_mask.png"),
        "bottle/ground_truth/dent/000_mask.png",
        "mask with no image",
    ),
    "defective image without mask": (
        lambda r: _unmasked_image(r / "bottle/test/hole/001.png"),
        "bottle/test/hole/001.png",
        "no mask",
    ),
}


@pytest.mark.parametrize("case", MVTEC_BAD, ids=list(MVTEC_BAD))
def test_mvtec_bad_input(case: str, mvtec: pathlib.Path, tmp_path: pathlib.Path) -> None:
    breaks, where, says = MVTEC_BAD[case]
    breaks(mvtec)
    with pytest.raises(DatasetError) as error:
        load_category(_cfg("mvtec", mvtec, tmp_path), "bottle")
    message = str(error.value)
    assert "\n" not in message and says in message
    assert str((mvtec / where).resolve()) in message
    assert _entries(tmp_path) == []


def _kolektor_without_defects(root: pathlib.Path) -> pathlib.Path:
    for mask in root.glob("kos*/*_label.bmp"):
        _save(mask, np.zeros((50, 20), np.uint8))
    return root


OTHER_BAD = {
    "kolektor: mask with no image": (
        "kolektor",
        lambda r: _save(r / "kos02/Part9_label.bmp", np.zeros((50, 20), np.uint8)),
        "kos02/Part9_label.bmp",
        "mask with no image",
    ),
    "kolektor: image with no mask": (
        "kolektor",
        lambda r: (r / "kos01/Part2_label.bmp").unlink(),
        "kos01/Part2.jpg",
        "no mask",
    ),
    "kolektor: truncated jpg": ("kolektor", lambda r: _truncate(r / "kos02/Part0.jpg"), "kos02/Part0.jpg", "cannot"),
    "kolektor: no defective images": ("kolektor", _kolektor_without_defects, ".", "no defective test images"),
    "folder: no abnormal folder": (
        "folder",
        lambda r: shutil.rmtree(r / "test/1.abnormal"),
        "test/1.abnormal",
        "not found",
    ),
    "folder: mask with no image": (
        "folder",
        lambda r: _stray_mask(r / "ground_truth/1.abnormal/zz.png"),
        "ground_truth/1.abnormal/zz.png",
        "mask with no image",
    ),
}


@pytest.mark.parametrize("case", OTHER_BAD, ids=list(OTHER_BAD))
def test_kolektor_and_folder_bad_input(
    case: str, kolektor: pathlib.Path, folder: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    kind, breaks, where, says = OTHER_BAD[case]
    root = kolektor if kind == "kolektor" else folder
    breaks(root)
    with pytest.raises(DatasetError) as error:
        load_category(_cfg(kind, root, tmp_path), "kolektor" if kind == "kolektor" else "my_parts")
    message = str(error.value)
    assert "\n" not in message and says in message
    assert str((root / where).resolve()) in message
    if kind == "folder" or "defective" not in case:  # (no defects is known only once the masks are decoded)
        assert _entries(tmp_path) == []


def test_a_root_that_is_a_file(tmp_path: pathlib.Path) -> None:
    file = tmp_path / "mvtec.tar"
    file.write_bytes(b"")
    with pytest.raises(DatasetError, match=f"dataset.root: {file} is not a folder"):
        resolve_categories(_cfg("mvtec", file, tmp_path))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match=f"dataset.root: no categories under {empty}"):
        resolve_categories(_cfg("mvtec", empty, tmp_path))
    with pytest.raises(DatasetError, match=f"dataset.root: no kosNN folders under {empty}"):
        resolve_categories(_cfg("kolektor", empty, tmp_path))
