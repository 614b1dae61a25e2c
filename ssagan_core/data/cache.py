"""Decode once: a layout's images, decoded, made square and resized, kept on disk so the next study decodes nothing.

An entry holds one category at one image size: `images.npy` (N, 3, S, S) uint8, `masks.npy` (N, S, S) uint8 0/1 when
the dataset has masks, and `manifest.json` (the sources, whether each mask has a defect pixel, the key's inputs). The
arrays are uncompressed .npy, opened as memory maps: loading reads only the pages that are used (a few hundred ms for
a category at 256 px). The key hashes the dataset kind, resolved root, category, image size, the square rule and
`DECODE_VERSION`, and every source file's relative path, size and mtime, so an edited, added or removed file makes a
new entry (and the entries it replaces are deleted). An entry is written only after every file of the category has
decoded, into a temporary folder renamed into place: a failed decode or write leaves nothing behind.

Images become 3-channel (grey ones by repeating the channel; 16-bit ones scaled to 8) and are resized with Pillow's
antialiased bilinear filter; masks are binarised (non-zero = defect) and resized with nearest neighbour. A non-square
image becomes square by one of two rules (`RESIZE_RULES`, `DataConfig.resize`):
- `stretch` (default): resized to S x S whatever its shape; nothing is cut away and no input is spent on padding, at
  the cost of the aspect ratio. A KolektorSDD strip (500 x ~1250) keeps 256 columns of its 500 at S = 256, against
  102 if padded, and its defects (thin cracks anywhere along the strip) are all kept, which a crop would not do.
- `pad`: the longer side is resized to S, keeping the aspect ratio, and the shorter side padded to S by repeating
  the image's edge pixels (masks with 0); for folder datasets whose images vary in shape.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib
import shutil
import struct
import uuid
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .layouts import DatasetError, Layout, Source

RESIZE_RULES = ("stretch", "pad")
DECODE_VERSION = 1  # bump when decoding, resizing or the entry format changes: old entries are then never read
REDUCING_GAP = 3.0  # Pillow: box-reduce first while the scale is >= 3x the target; indistinguishable from exact
CACHE_ENV = "SSAGAN_CACHE_DIR"

# A file Pillow cannot read to its end raises one of these, depending on the format and the damage.
_BAD_FILE = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, Image.DecompressionBombError)
_SIXTEEN_BIT = ("I", "I;16", "I;16B", "I;16L", "I;16N")  # 16-bit grey PNG / TIFF (Pillow gives "I" or "I;16")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decoded:
    """A layout's images and masks at the model's size, in the layout's order."""

    images: np.ndarray  # (N, 3, S, S) uint8; a read-only memory map when it came from the cache
    masks: np.ndarray | None  # (N, S, S) uint8, 1 = defect; zeros for images without a mask; None: no masks
    flagged: np.ndarray  # (N,) bool: the mask has a non-zero pixel at full resolution (a tiny defect can vanish at S)
    cached: bool  # True when read from the cache, False when decoded now


def default_cache_dir() -> pathlib.Path:
    """`$SSAGAN_CACHE_DIR`, or `~/.cache/ssagan-ablate`."""
    return pathlib.Path(os.environ.get(CACHE_ENV) or "~/.cache/ssagan-ablate").expanduser()


def load_decoded(
    layout: Layout, kind: str, category: str, image_size: int, resize: str, cache_dir: pathlib.Path
) -> Decoded:
    """The layout decoded at `image_size`: from the cache when its entry exists, else decoded now and cached."""
    key = cache_key(layout, kind, category, image_size, resize)
    family = f"{category}-{image_size}px-{resize}-{_digest(str(layout.root))[:8]}-"  # one root's versions
    entry = cache_dir / kind / (family + key[:20])
    decoded = _read_entry(entry, layout, image_size)
    if decoded is not None:
        return decoded
    log.info("decoding %d images of %s/%s at %d px into %s", len(layout.sources), kind, category, image_size, entry)
    decoded = decode_layout(layout, image_size, resize)
    _write_entry(entry, decoded, layout, key)
    return decoded


def cache_key(layout: Layout, kind: str, category: str, image_size: int, resize: str) -> str:
    """sha256 over what the decoded arrays depend on, each source file's size and mtime included."""
    files = []
    for source in layout.sources:
        for rel in (source.image, source.mask):
            if rel is not None:
                path = layout.root / rel
                try:
                    st = path.stat()
                except OSError as e:
                    raise DatasetError(f"{path}: cannot read ({e.strerror or e})") from e
                files.append((rel, st.st_size, st.st_mtime_ns))
    return _digest(
        json.dumps(
            {
                "version": DECODE_VERSION,
                "kind": kind,
                "root": str(layout.root),
                "category": category,
                "image_size": image_size,
                "resize": resize,
                "sources": [_source_json(s) for s in layout.sources],
                "files": files,
            }
        )
    )


def decode_layout(layout: Layout, image_size: int, resize: str) -> Decoded:
    """Decode every image and mask of `layout`; the first file that fails is a `DatasetError` naming it."""
    if resize not in RESIZE_RULES:
        raise ValueError(f"resize: {resize!r} is not one of {', '.join(map(repr, RESIZE_RULES))}")
    n = len(layout.sources)
    images = np.empty((n, 3, image_size, image_size), np.uint8)
    masks = np.zeros((n, image_size, image_size), np.uint8) if layout.has_masks else None
    flagged = np.zeros(n, bool)
    for i, source in enumerate(layout.sources):
        image_path = layout.root / source.image
        image = _open(image_path)
        if source.mask is not None:
            mask_path = layout.root / source.mask
            mask = _open(mask_path)
            if mask.size != image.size:
                raise DatasetError(
                    f"{mask_path}: mask is {mask.size[0]}x{mask.size[1]} px, its image {image_path} is "
                    f"{image.size[0]}x{image.size[1]}"
                )
            masks[i], flagged[i] = _mask_array(mask, image_size, resize)
        pixels = _image_array(image, image_size, resize)  # (S, S) grey or (S, S, 3)
        images[i] = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)  # grey: the channel repeats
    return Decoded(images, masks, flagged, cached=False)


# ---------------------------------------------------------------------------------------------------------------------
# Decoding one file


def _open(path: pathlib.Path) -> Image.Image:
    """The image at `path`, decoded to its last byte (Pillow decodes lazily, and a truncated file fails only then)."""
    try:
        with Image.open(path) as image:
            image.load()
    except _BAD_FILE as e:
        reason = " ".join(str(e).split()) or type(e).__name__  # one line
        raise DatasetError(f"{path}: cannot read image ({reason})") from e
    return image


def _image_array(image: Image.Image, size: int, resize: str) -> np.ndarray:
    """(S, S) uint8 for a grey image, (S, S, 3) otherwise; grey stays one channel until the end (3x less to resize)."""
    if image.mode in _SIXTEEN_BIT:
        image = Image.fromarray((np.asarray(image, np.int64) // 257).clip(0, 255).astype(np.uint8))
    elif image.mode in ("1", "LA", "La"):
        image = image.convert("L")
    elif image.mode not in ("L", "RGB"):
        image = image.convert("RGB")  # palette, alpha, CMYK...: Pillow would resize a palette by nearest neighbour
    return _square(image, size, resize, Image.BILINEAR, pad_mode="edge")


def _mask_array(mask: Image.Image, size: int, resize: str) -> tuple[np.ndarray, bool]:
    """(S, S) uint8 0/1 and whether any pixel is non-zero at full resolution."""
    if mask.mode not in ("1", "L", "F", *_SIXTEEN_BIT):
        mask = mask.convert("L")
    binary = np.asarray(mask) != 0
    small = _square(Image.fromarray(binary.astype(np.uint8)), size, resize, Image.NEAREST, pad_mode="constant")
    return small, bool(binary.any())


def _square(image: Image.Image, size: int, resize: str, resample: int, pad_mode: str) -> np.ndarray:
    """`image` as a size x size array, by the `resize` rule (see the module docstring)."""
    w, h = image.size
    gap = REDUCING_GAP if resample != Image.NEAREST else None
    if resize == "stretch" or w == h:
        return np.asarray(image.resize((size, size), resample, reducing_gap=gap))
    scale = size / max(w, h)
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    pixels = np.asarray(image.resize((tw, th), resample, reducing_gap=gap))
    top, left = (size - th) // 2, (size - tw) // 2
    pad = [(top, size - th - top), (left, size - tw - left)] + [(0, 0)] * (pixels.ndim - 2)
    return np.pad(pixels, pad, mode=pad_mode)


# ---------------------------------------------------------------------------------------------------------------------
# Cache entries


def _read_entry(entry: pathlib.Path, layout: Layout, image_size: int) -> Decoded | None:
    """The entry's arrays, or None when there is none or it is unusable (then it is rebuilt)."""
    manifest_path = entry / "manifest.json"
    if not manifest_path.is_file():
        return None
    n = len(layout.sources)
    try:
        manifest = json.loads(manifest_path.read_text())
        images = np.load(entry / "images.npy", mmap_mode="r")
        masks = np.load(entry / "masks.npy", mmap_mode="r") if layout.has_masks else None
        flagged = np.array(manifest["flagged"], bool)
        ok = (
            manifest["sources"] == [_source_json(s) for s in layout.sources]
            and images.shape == (n, 3, image_size, image_size)
            and images.dtype == np.uint8
            and (masks is None or (masks.shape == (n, image_size, image_size) and masks.dtype == np.uint8))
            and flagged.shape == (n,)
        )
    except (OSError, ValueError, KeyError, TypeError) as e:
        warnings.warn(f"cache entry {entry} is unreadable ({e}); decoding again", stacklevel=3)
        ok = False
    if not ok:
        shutil.rmtree(entry, ignore_errors=True)
        return None
    return Decoded(images, masks, flagged, cached=True)


def _write_entry(entry: pathlib.Path, decoded: Decoded, layout: Layout, key: str) -> None:
    """Write `entry` atomically: into a temporary sibling folder, renamed into place once complete. A failure to
    write (full disk, read-only cache) is a warning: the decoded arrays are still good for this run."""
    tmp = entry.parent / f".{entry.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        tmp.mkdir(parents=True)
        np.save(tmp / "images.npy", decoded.images)
        if decoded.masks is not None:
            np.save(tmp / "masks.npy", decoded.masks)
        manifest = {
            "key": key,
            "root": str(layout.root),
            "sources": [_source_json(s) for s in layout.sources],
            "flagged": decoded.flagged.tolist(),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest))
        os.replace(tmp, entry)
    except OSError as e:
        if not (entry / "manifest.json").is_file():  # else another process wrote the same entry first: fine
            warnings.warn(f"could not write the image cache {entry} ({e}); set ${CACHE_ENV}", stacklevel=3)
        return
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _prune(entry)


def _prune(entry: pathlib.Path) -> None:
    """Delete the entries `entry` replaces: the same root, category, size and rule, older file versions."""
    family = entry.name[: entry.name.rindex("-") + 1]
    for old in entry.parent.iterdir():
        if old.name.startswith(family) and old != entry:
            shutil.rmtree(old, ignore_errors=True)


def _source_json(source: Source) -> list:
    return [source.image, source.split, source.defect, source.mask]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
