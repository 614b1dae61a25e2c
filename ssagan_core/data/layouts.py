"""Dataset layouts on disk: which files make up a category, with each image's split, defect kind and mask.

Readers only list folders (no pixel is decoded), so they are cheap enough to run before every load, and they turn a
bad layout (missing root, unknown category, an empty `train/good`, a test set without good or defective images, a mask
with no image) into a one-line `DatasetError` naming the path. cache.py decodes what a layout lists; load.py
turns the decoded arrays into train / validation / test.

Layouts (paths relative to the dataset root):
- mvtec: `<category>/train/good/*`, `<category>/test/good/*`, `<category>/test/<defect>/*`, masks
  `<category>/ground_truth/<defect>/<stem>_mask.png` (or `<stem>.png`); a category without `ground_truth` has none.
- kolektor (KolektorSDD v1): `kosNN/PartK.jpg` with its mask `kosNN/PartK_label.bmp`; one category, `kolektor`.
  Labels come from the masks, so the split is decided after decoding (`POOL`, `FROM_MASK`). Each `kosNN` folder is
  one commutator photographed as several surfaces: its images form one `group`, kept on one side of every split.
- folder (the official Skip-GANomaly layout): `train/0.normal/*`, `test/0.normal/*`, `test/1.abnormal/*`, optional
  masks `ground_truth/1.abnormal/<stem>.png` (or `<stem>_mask.png`), the MVTec rule applied to the one defect folder;
  they sit outside `test/` so that an ImageFolder reader (the official code's) does not take them for a third class.
  One category, named after the root folder.
- elpv: `labels.csv` (`images/cellNNNN.png  <defect probability>  <mono|poly>`) and `images/`, shipped by the PyPI
  package `elpv-dataset` (or any folder laid out like its repository). Categories = cell types.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import pathlib
import re
from dataclasses import dataclass

from .images import GOOD

DEFECT = "defect"  # defect kind of an image whose dataset has one kind only (kolektor, folder)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
MVTEC_CATEGORIES = (
    "bottle",
    "cable",
    "capsule",
    "carpet",
    "grid",
    "hazelnut",
    "leather",
    "metal_nut",
    "pill",
    "screw",
    "tile",
    "toothbrush",
    "transistor",
    "wood",
    "zipper",
)
KOLEKTOR_CATEGORY = "kolektor"
FOLDER_NORMAL, FOLDER_ABNORMAL = "0.normal", "1.abnormal"
ELPV_GRADES = 3  # ELPV defect probabilities are grades k/3: 0 good, 1/3 left out (too uncertain), 2/3 and 1 defective

POOL = "pool"  # the split of a good image that load.py assigns by seed (kolektor, elpv); defective ones are test
FROM_MASK = ""  # the defect kind of an image labelled by its mask once decoded (kolektor)

ELPV_MISSING = "dataset.kind: 'elpv' needs the optional package elpv-dataset: pip install 'ssagan-ablate[elpv]'"


class DatasetError(ValueError):
    """A dataset cannot be used as configured; the message is one line and names the offending path or key."""


@dataclass(frozen=True)
class Source:
    """One image of a layout, with paths relative to the layout's root ("/"-separated)."""

    image: str
    split: str  # "train", "test" or POOL
    defect: str  # GOOD, the defect kind, or FROM_MASK
    mask: str | None = None
    # The physical part the image shows (kolektor: its kosNN folder): the images of one group stay on one side of
    # every split (see groups.py). None: a group of its own. Not part of the cache key: decoding ignores it.
    group: str | None = None


@dataclass(frozen=True)
class Layout:
    """The images of one category, in a fixed order (sorted paths), and whether the dataset has masks."""

    root: pathlib.Path  # absolute, symlinks resolved: part of the cache key
    sources: tuple[Source, ...]
    has_masks: bool


def expand_path(text: str, key: str) -> pathlib.Path:
    """`text` with `~` and `$VARS` expanded, made absolute; an unset variable is a `DatasetError` naming `key`."""
    expanded = os.path.expandvars(os.path.expanduser(text))
    unset = re.search(r"\$\{?(\w+)", expanded)  # expandvars leaves unset variables as they are
    if unset:
        raise DatasetError(f"{key}: environment variable {unset.group(1)} is not set ({text!r})")
    return pathlib.Path(expanded).resolve()


def dataset_root(root: str) -> pathlib.Path:
    """`root` expanded (`expand_path`) and resolved; a missing folder is a `DatasetError`."""
    path = expand_path(root, "dataset.root")
    if not path.exists():
        raise DatasetError(f"dataset.root: {path} does not exist")
    if not path.is_dir():
        raise DatasetError(f"dataset.root: {path} is not a folder")
    return path


# ---------------------------------------------------------------------------------------------------------------------
# MVTec AD


def mvtec_categories(root: pathlib.Path) -> tuple[str, ...]:
    """The folders under `root` that have a `train` folder, sorted."""
    found = tuple(p.name for p in _subfolders(root) if (p / "train").is_dir())
    if not found:
        raise DatasetError(f"dataset.root: no categories under {root} (MVTec layout: <root>/<category>/train/good)")
    return found


def read_mvtec(root: pathlib.Path, category: str) -> Layout:
    """The MVTec AD layout of one category."""
    base = root / category
    train = _images(base / "train" / GOOD, required=True)
    test_dir = base / "test"
    if not test_dir.is_dir():
        raise DatasetError(f"{test_dir}: not found (MVTec layout: <category>/test/good, <category>/test/<defect>)")
    good = _images(test_dir / GOOD, required=True)
    defect_dirs = [p for p in _subfolders(test_dir) if p.name != GOOD]
    defective = [(p.name, image) for p in defect_dirs for image in _images(p)]
    if not defective:
        raise DatasetError(f"{test_dir}: no defective images (expected test/<defect>/ folders next to test/good)")

    gt = base / "ground_truth"
    has_masks = gt.is_dir()
    masks: dict[pathlib.Path, pathlib.Path | None] = {}
    if has_masks:
        tested = {p.name for p in defect_dirs}
        for folder in _subfolders(gt):
            if folder.name not in tested:  # its masks can have no image
                stray = _images(folder)
                if stray:
                    raise DatasetError(f"{stray[0]}: mask with no image (no defect folder {test_dir / folder.name})")
        for folder in defect_dirs:
            images = [image for name, image in defective if name == folder.name]
            masks.update(zip(images, _pair_masks(images, folder, gt / folder.name), strict=True))

    sources = [Source(_rel(root, p), "train", GOOD) for p in train]
    sources += [Source(_rel(root, p), "test", GOOD) for p in good]
    sources += [Source(_rel(root, p), "test", name, _rel(root, masks.get(p))) for name, p in defective]
    return Layout(root, tuple(sources), has_masks)


# ---------------------------------------------------------------------------------------------------------------------
# KolektorSDD (v1)


def kolektor_categories(root: pathlib.Path) -> tuple[str, ...]:
    """KolektorSDD is one category."""
    if not _kolektor_parts(root):
        raise DatasetError(f"dataset.root: no kosNN folders under {root} (KolektorSDD layout: kos01/Part0.jpg)")
    return (KOLEKTOR_CATEGORY,)


def read_kolektor(root: pathlib.Path, category: str) -> Layout:
    """Every image of every `kosNN` folder with its `_label` mask; the masks decide the labels, the folder is the
    image's group (one commutator)."""
    sources = []
    for part in _kolektor_parts(root):
        files = _images(part)
        images = [p for p in files if not p.stem.endswith("_label")]
        labels = {p.stem.removesuffix("_label"): p for p in files if p.stem.endswith("_label")}
        for image in images:
            mask = labels.pop(image.stem, None)
            if mask is None:
                raise DatasetError(f"{image}: no mask (expected {part / (image.stem + '_label.bmp')})")
            sources.append(Source(_rel(root, image), POOL, FROM_MASK, _rel(root, mask), group=part.name))
        if labels:
            raise DatasetError(f"{next(iter(labels.values()))}: mask with no image")
    if not sources:
        raise DatasetError(f"{root}: no images in the kosNN folders (KolektorSDD layout: kos01/Part0.jpg)")
    return Layout(root, tuple(sources), has_masks=True)


def _kolektor_parts(root: pathlib.Path) -> list[pathlib.Path]:
    return [p for p in _subfolders(root) if p.name.startswith("kos")]


# ---------------------------------------------------------------------------------------------------------------------
# Folder layout (users' own data)


def folder_categories(root: pathlib.Path) -> tuple[str, ...]:
    """A folder dataset is one category, named after its root folder."""
    return (root.name,)


def read_folder(root: pathlib.Path, category: str) -> Layout:
    """`train/0.normal`, `test/0.normal`, `test/1.abnormal`, and masks in `ground_truth/1.abnormal` if it exists."""
    train = _images(root / "train" / FOLDER_NORMAL, required=True)
    good = _images(root / "test" / FOLDER_NORMAL, required=True)
    abnormal = _images(root / "test" / FOLDER_ABNORMAL, required=True)
    gt = root / "ground_truth" / FOLDER_ABNORMAL
    has_masks = gt.is_dir()
    masks = _pair_masks(abnormal, root / "test" / FOLDER_ABNORMAL, gt) if has_masks else [None] * len(abnormal)
    sources = [Source(_rel(root, p), "train", GOOD) for p in train]
    sources += [Source(_rel(root, p), "test", GOOD) for p in good]
    sources += [Source(_rel(root, p), "test", DEFECT, _rel(root, m)) for p, m in zip(abnormal, masks, strict=True)]
    return Layout(root, tuple(sources), has_masks)


# ---------------------------------------------------------------------------------------------------------------------
# ELPV (solar cells, from the PyPI package elpv-dataset)


def elpv_root(root: str | None) -> pathlib.Path:
    """The folder holding `labels.csv` and `images/`: `root` if given, else the installed package's data."""
    if root:
        return dataset_root(root)
    # Only located, never imported: its one function decodes all 2,624 cells, and ssagan_core imports nothing
    # beyond torch, numpy, Pillow and scikit-learn.
    spec = importlib.util.find_spec("elpv_dataset")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(ELPV_MISSING)
    return pathlib.Path(spec.submodule_search_locations[0]).resolve() / "data"


def elpv_categories(root: pathlib.Path) -> tuple[str, ...]:
    """The cell types in `labels.csv` (mono, poly)."""
    return tuple(sorted({cell_type for _, _, cell_type in _elpv_rows(root)}))


def read_elpv(root: pathlib.Path, category: str) -> Layout:
    """The cells of one type: probability 0 (good, split by seed), 2/3 and 1 (test defects, `p0.67`, `p1.0`);
    1/3 is left out, too uncertain to be either."""
    sources = []
    for image, p, cell_type in _elpv_rows(root):
        grade = round(p * ELPV_GRADES)
        if cell_type != category or grade == 1:
            continue
        sources.append(Source(image, POOL, GOOD if grade == 0 else f"p{round(p, 2)}"))
    return Layout(root, tuple(sources), has_masks=False)


def _elpv_rows(root: pathlib.Path) -> list[tuple[str, float, str]]:
    """(image path, defect probability, cell type) per line of `labels.csv`."""
    labels = root / "labels.csv"
    try:
        lines = labels.read_text().splitlines()
    except OSError as e:
        raise DatasetError(f"{labels}: cannot read ({e.strerror or e})") from e
    rows = []
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        try:
            image, p, cell_type = fields
            rows.append((image, float(p), cell_type))
        except ValueError:
            raise DatasetError(f"{labels}:{number}: expected '<image> <probability> <type>', got {line!r}") from None
    if not rows:
        raise DatasetError(f"{labels}: no images listed")
    return rows


# ---------------------------------------------------------------------------------------------------------------------
# Listing helpers


def _subfolders(folder: pathlib.Path) -> list[pathlib.Path]:
    """Visible subfolders, sorted by name."""
    for p in folder.iterdir():
        if not p.name.startswith("."):
            _no_broken_link(p)
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _no_broken_link(path: pathlib.Path) -> None:
    """A symbolic link that loops (a -> b -> a) or points nowhere is an error, not a silently missing folder or
    image."""
    if path.is_symlink() and not path.exists():
        try:
            path.resolve(strict=True)
        except RuntimeError:  # Python < 3.13 reports a loop so
            why = "loops"
        except OSError as e:
            why = "loops" if e.errno == errno.ELOOP else "points nowhere"
        else:
            return
        raise DatasetError(f"{path}: a symbolic link that {why} ({os.readlink(path)})")


def _images(folder: pathlib.Path, required: bool = False) -> list[pathlib.Path]:
    """The image files in `folder`, sorted; when `required`, a missing or empty folder is a `DatasetError`.
    Hidden files are skipped: macOS leaves `._name.png` companions that are not images."""
    _no_broken_link(folder)
    if not folder.is_dir():
        if required:
            raise DatasetError(f"{folder}: not found")
        return []
    images = []
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."):
            _no_broken_link(p)
            if p.is_file():
                images.append(p)
    if required and not images:
        raise DatasetError(f"{folder}: no images ({' '.join(IMAGE_EXTENSIONS)})")
    return images


def _pair_masks(images: list[pathlib.Path], image_dir: pathlib.Path, mask_dir: pathlib.Path) -> list[pathlib.Path]:
    """The mask of each of `images` (from `image_dir`) in `mask_dir`: `<stem>_mask.<ext>` or `<stem>.<ext>`. An image
    without a mask is an error, and so is a mask that matches no image."""
    masks: dict[str, pathlib.Path] = {}
    for mask in _images(mask_dir):
        if mask.stem in masks:
            raise DatasetError(f"{mask}: a second mask named {mask.stem} (and {masks[mask.stem].name})")
        masks[mask.stem] = mask
    paired = []
    for image in images:
        mask = masks.pop(image.stem + "_mask", None) or masks.pop(image.stem, None)
        if mask is None:
            raise DatasetError(f"{image}: no mask (expected {mask_dir / (image.stem + '_mask.png')})")
        paired.append(mask)
    if masks:
        raise DatasetError(f"{next(iter(masks.values()))}: mask with no image in {image_dir}")
    return paired


def _rel(root: pathlib.Path, path: pathlib.Path | None) -> str | None:
    return None if path is None else path.relative_to(root).as_posix()
