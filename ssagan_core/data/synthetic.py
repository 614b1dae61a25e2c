"""A procedurally rendered industrial-surface anomaly dataset: the project's embedded default (MVTec AD cannot ship).

Three textures and two objects, five defect kinds (each applies to every category), pixel-exact masks. Every scene is
drawn in normalised coordinates (the image is the unit square) from seeds derived from (seed, category, split, class,
index), so it is deterministic and the same scene renders at any resolution. `write_mvtec_tree` writes the same images
in the MVTec AD folder layout, for testing and benchmarking the real-dataset loaders.

Sized for the ablation budget (32 px, a few hundred iterations on a CPU): normal scenes vary little, as under a fixed
camera with controlled light (parts in a fixture, a web running in register, small shifts and exposure changes), and
textures stay legible at 32 px; defects span 10-30% of the image side (1-5% of its area) and differ strongly in
lightness or hue from everything in view.
"""

from __future__ import annotations

import math
import pathlib
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from numbers import Integral

import numpy as np
from PIL import Image

from . import validation
from .images import GOOD, CategoryData, ImageSet

SYNTHETIC_TEXTURES = ("weave", "wood", "brushed_metal")
SYNTHETIC_OBJECTS = ("nut", "capsule")
SYNTHETIC_CATEGORIES: tuple[str, ...] = SYNTHETIC_TEXTURES + SYNTHETIC_OBJECTS
SYNTHETIC_DEFECTS: tuple[str, ...] = ("scratch", "hole", "stain", "missing", "foreign")

MIN_SIZE, MAX_SIZE = 16, 4096
SUPERSAMPLE_TO = 64  # small images are rendered at >= this many pixels and block-averaged, so they do not alias
NOISE_SIGMA = 2.0 / 255  # sensor noise, per pixel and channel (2 grey levels)
LX, LY = -0.6, -0.8  # direction towards the light in image coordinates (x right, y down): the top left
BITE_INSET = 0.025  # a piece broken off an object is centred this far inside its outline: a chunk, not a nick

Site = Callable[[np.random.Generator], tuple[float, float]]
Painted = tuple[np.ndarray, np.ndarray]  # a defective image (3, H, W) and the defect's coverage alpha (H, W)

# Foreign particles take one of these colours, far from the surface they lie on (blue, green, black, yellow, white).
FOREIGN_COLOURS = np.array(
    [[0.15, 0.3, 0.8], [0.2, 0.55, 0.2], [0.06, 0.06, 0.07], [0.9, 0.8, 0.2], [0.92, 0.92, 0.95]], np.float32
)


@dataclass(frozen=True)
class _Scene:
    """A clean rendering (before lighting and noise) and what the defect painters need to know about it."""

    image: np.ndarray  # (3, H, W) float32, about [0, 1]
    tones: tuple[np.ndarray, ...]  # nominal (3,) colours of the surface that defects lie on: they must contrast
    site: Site  # draws a defect centre on the surface (on the object, for objects), in image coordinates
    flat: np.ndarray | None = None  # textures: (3,) colour of what shows where a chunk is gone (`missing`)
    background: np.ndarray | None = None  # objects: (3, H, W), what a missing piece reveals
    foreground: np.ndarray | None = None  # objects: (3, H, W), the object's own colours
    coverage: np.ndarray | None = None  # objects: (H, W) alpha of the object over the background
    edge_site: Site | None = None  # objects: draws a point just inside the outline, where a piece breaks off
    surroundings: tuple[np.ndarray, ...] = ()  # objects: nominal colours of the table, which a foreign body also leaves


# ---------------------------------------------------------------------------------------------------------------------
# Public API


def render_images(category: str, image_size: int, n_good: int, n_defective: int, seed: int, split: str) -> ImageSet:
    """Render `n_good` normal then `n_defective` defective images; defect kinds cycle through SYNTHETIC_DEFECTS."""
    _check_category(category)
    _check_size(image_size)
    _check_counts(n_good=n_good, n_defective=n_defective, seed=seed)
    if not isinstance(split, str) or not split:
        raise ValueError(f"split: expected a non-empty string such as 'train' or 'test', got {split!r}")
    images = np.zeros((n_good + n_defective, 3, image_size, image_size), np.uint8)
    masks = np.zeros((n_good + n_defective, image_size, image_size), np.uint8)
    defects = []
    for i, (defect, entropy) in enumerate(_plan(category, n_good, n_defective, seed, split)):
        images[i], masks[i] = _render_one(category, image_size, entropy, defect)
        defects.append(defect)
    return ImageSet(
        images=images,
        labels=np.array([d != GOOD for d in defects], np.int64),
        defects=tuple(defects),
        paths=tuple(f"synthetic://{category}/{split}/{i}_{d}" for i, d in enumerate(defects)),
        masks=masks,
    )


def make_synthetic_category(
    category: str,
    image_size: int = 64,
    seed: int = 0,
    n_train: int = 200,
    n_test_good: int = 40,
    n_test_defective: int = 60,
    val_fraction: float = 0.1,
) -> CategoryData:
    """One synthetic category, split into train (normal), val (held-out normals + generic defects) and test."""
    _check_counts(n_train=n_train, n_test_good=n_test_good, n_test_defective=n_test_defective)
    if n_train < 1:
        raise ValueError(f"n_train: must be >= 1, got {n_train}")
    train = render_images(category, image_size, n_train, 0, seed, split="train")
    train, val = validation.make_validation(train, val_fraction, seed)
    test = render_images(category, image_size, n_test_good, n_test_defective, seed, split="test")
    return CategoryData(dataset="synthetic", category=category, train=train, val=val, test=test)


def write_mvtec_tree(
    root: str | pathlib.Path,
    categories: Iterable[str] = SYNTHETIC_CATEGORIES,
    image_size: int = 256,
    seed: int = 0,
    n_train: int = 200,
    n_test_good: int = 40,
    n_test_defective: int = 60,
) -> pathlib.Path:
    """Write the synthetic images as PNGs in the MVTec AD layout under `root` (the same scenes as
    `render_images`): <category>/train/good/000.png, <category>/test/<defect>/000.png and
    <category>/ground_truth/<defect>/000_mask.png (0/255, mode "L")."""
    categories = tuple(categories)
    for category in categories:
        _check_category(category)
    _check_size(image_size)
    _check_counts(n_train=n_train, n_test_good=n_test_good, n_test_defective=n_test_defective, seed=seed)
    root = pathlib.Path(root)
    width = max(3, len(str(max(n_train, n_test_good, n_test_defective))))
    for category in categories:
        # Rendered and written one image at a time: at MVTec's ~1024 px a whole category would not fit in memory.
        jobs = [("train", n_train, 0), ("test", n_test_good, n_test_defective)]
        for split, n_good, n_defective in jobs:
            counts: dict[str, int] = {}
            for defect, entropy in _plan(category, n_good, n_defective, seed, split):
                image, mask = _render_one(category, image_size, entropy, defect)
                k = counts[defect] = counts.get(defect, -1) + 1
                name = f"{k:0{width}d}"
                folder = root / category / split / defect
                folder.mkdir(parents=True, exist_ok=True)
                # Fast zlib level: 3x quicker to write at 1024 px than the default, and as quick to decode.
                Image.fromarray(image.transpose(1, 2, 0)).save(folder / f"{name}.png", compress_level=1)
                if defect != GOOD:
                    gt = root / category / "ground_truth" / defect
                    gt.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(mask * np.uint8(255)).save(gt / f"{name}_mask.png", compress_level=1)
    return root


# ---------------------------------------------------------------------------------------------------------------------
# Seeds, validation and the per-image pipeline


def _plan(category: str, n_good: int, n_defective: int, seed: int, split: str) -> Iterator[tuple[str, list[int]]]:
    """(defect kind, seed entropy) per image. Good and defective images are numbered separately, so asking for more
    of one class leaves the other's scenes unchanged; crc32 gives string ids that are stable across runs."""
    base = [seed, zlib.crc32(category.encode()), zlib.crc32(split.encode())]
    for j in range(n_good):
        yield GOOD, [*base, 0, j]
    for j in range(n_defective):
        yield SYNTHETIC_DEFECTS[j % len(SYNTHETIC_DEFECTS)], [*base, 1, j]


def _check_category(category: str) -> None:
    if category not in SYNTHETIC_CATEGORIES:
        raise ValueError(f"category: expected one of {', '.join(SYNTHETIC_CATEGORIES)}, got {category!r}")


def _check_size(image_size: int) -> None:
    if not isinstance(image_size, Integral) or not MIN_SIZE <= image_size <= MAX_SIZE:
        raise ValueError(f"image_size: expected an int in [{MIN_SIZE}, {MAX_SIZE}], got {image_size!r}")


def _check_counts(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, Integral) or value < 0:
            raise ValueError(f"{name}: expected a non-negative int, got {value!r}")


@lru_cache(maxsize=8)
def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates of an n x n image of the unit square, (n, n) float32 each."""
    y, x = (np.mgrid[0:n, 0:n].astype(np.float32) + 0.5) / n
    x.flags.writeable = y.flags.writeable = False
    return x, y


def _render_one(category: str, image_size: int, entropy: list[int], defect: str) -> tuple[np.ndarray, np.ndarray]:
    """One image (3, S, S) uint8 and its mask (S, S) uint8. The scene and the defect draw from separate streams, so
    `defect=GOOD` with the same entropy renders the same scene without its defect (the tests use this)."""
    scene_seq, defect_seq = np.random.SeedSequence(entropy).spawn(2)
    scene_rng, defect_rng = np.random.default_rng(scene_seq), np.random.default_rng(defect_seq)
    ss = -(-SUPERSAMPLE_TO // image_size)  # ceil: 4x at 16 px, 2x at 32 px, 1x from 64 px
    n = image_size * ss
    x, y = _grid(n)
    aa = 1.0 / n  # edges are one rendered pixel wide: anti-aliased, yet sharp at every resolution
    scene = _RENDERERS[category](x, y, scene_rng, aa)
    image, alpha = scene.image, np.zeros_like(x)
    if defect != GOOD:
        image, alpha = _PAINTERS[defect](scene, x, y, defect_rng, aa)
    image = _lighting(image, x, y, scene_rng)
    if ss > 1:
        image = image.reshape(3, image_size, ss, image_size, ss).mean(axis=(2, 4))
        alpha = alpha.reshape(image_size, ss, image_size, ss).mean(axis=(1, 3))
    image = image * 255 + scene_rng.standard_normal(image.shape, dtype=np.float32) * (NOISE_SIGMA * 255)
    image = np.clip(image + 0.5, 0, 255, out=image).astype(np.uint8)
    # The mask marks the pixels the defect covers at least half; one too thin to half cover any pixel at this size
    # (a scratch at 16-32 px) is marked where it covers most, so a defective image never has an empty mask.
    peak = float(alpha.max())
    return image, (alpha > (0.5 if peak > 0.5 else 0.5 * peak)).astype(np.uint8)


def _lighting(image: np.ndarray, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-image exposure, a gentle illumination gradient and a slight colour cast: a controlled inspection station."""
    gain = rng.uniform(0.98, 1.02)
    gx, gy = rng.uniform(-0.03, 0.03), rng.uniform(-0.03, 0.03)
    tint = 1 + rng.normal(0, 0.006, (3, 1, 1)).astype(np.float32)
    return image * (gain * (1 + gx * (x - 0.5) + gy * (y - 0.5))) * tint


# ---------------------------------------------------------------------------------------------------------------------
# Drawing helpers, all in normalised coordinates


def _smoothstep(e0: float, e1: float, t: np.ndarray) -> np.ndarray:
    t = np.clip((t - e0) / (e1 - e0), 0, 1)
    return t * t * (3 - 2 * t)


def _fill(sd: np.ndarray, aa: float) -> np.ndarray:
    """Anti-aliased coverage of the region where the signed distance `sd` is negative."""
    return np.clip(0.5 - sd / aa, 0, 1)


def _rotate(x: np.ndarray, y: np.ndarray, cx: float, cy: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates relative to (cx, cy) in a frame turned by `angle`: a shape drawn in them turns by `angle`."""
    c, s = math.cos(angle), math.sin(angle)
    dx, dy = x - cx, y - cy
    return c * dx + s * dy, -s * dx + c * dy


def _waves(
    x: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator,
    n: int,
    f_lo: float,
    f_hi: float,
    angle: float = 0.0,
    spread: float = math.pi,
) -> np.ndarray:
    """A smooth random field of unit-ish amplitude: `n` plane waves of `f_lo`..`f_hi` cycles per image width, their
    wave vectors within `spread` of `angle`. Resolution independent, unlike pixel noise.

    `x`, `y` must be the pixel grid of `_grid`: a plane wave is separable in it, cos(a + b) = cos a cos b - sin a sin b
    with `a` depending on the column only and `b` on the row only, so the full-size work is two outer products."""
    xs, ys = x[:1, :], y[:, :1]  # (1, W), (H, 1)
    out = np.zeros_like(x)
    for _ in range(n):
        t, f = angle + rng.uniform(-spread, spread), 2 * math.pi * rng.uniform(f_lo, f_hi)
        a, b = (f * math.cos(t)) * xs, (f * math.sin(t)) * ys + rng.uniform(0, 2 * math.pi)
        out += np.cos(a) * np.cos(b)
        out -= np.sin(a) * np.sin(b)
    return out * math.sqrt(2 / n)


def _blob_radius(
    theta: np.ndarray, r0: float, rng: np.random.Generator, harmonics: tuple[int, ...], wobble: float
) -> np.ndarray:
    """An irregular outline r(theta): a circle of radius r0 perturbed by a few angular harmonics."""
    r = np.ones_like(theta)
    for k in harmonics:
        r += rng.uniform(0, wobble) * np.sin(k * theta + rng.uniform(0, 2 * math.pi))
    return r0 * r


def _band_limit(freq: float, aa: float) -> float:
    """Weight of a detail of `freq` cycles per image: 1 when resolved (>= 6 rendered pixels per cycle), fading to 0
    at 3 pixels per cycle, like a mipmap, so fine detail never aliases into noise at small sizes."""
    return float(1 - _smoothstep(1 / 6, 1 / 3, np.asarray(freq * aa)))


def _grid_lines(x: np.ndarray, y: np.ndarray, per_side: int, width: float, aa: float) -> np.ndarray:
    """Coverage of a square grid of lines `width` wide, `per_side` of them across the image each way (the lines
    run through the middles of the `per_side` x `per_side` tiles of the image, so none lies on its border)."""
    dx = np.abs((x * per_side) % 1 - 0.5) / per_side  # distance to the nearest line
    dy = np.abs((y * per_side) % 1 - 0.5) / per_side
    return _fill(np.minimum(dx, dy) - 0.5 * width, aa)


def _light_in_frame(angle: float) -> tuple[float, float]:
    """The light direction in the frame of `_rotate(..., angle)`, so an object turned by `angle` is still lit
    from the top left."""
    c, s = math.cos(angle), math.sin(angle)
    return c * LX + s * LY, -s * LX + c * LY


def _sign(rng: np.random.Generator) -> float:
    return 1.0 if rng.uniform() < 0.5 else -1.0


def _colour(rgb: tuple[float, float, float]) -> np.ndarray:
    return np.array(rgb, np.float32)


def _per_channel(rgb: np.ndarray, like: np.ndarray) -> np.ndarray:
    """`rgb` (3,) shaped to multiply `like`, a (3,) colour or a (3, H, W) image."""
    return rgb.reshape((3,) + (1,) * (like.ndim - 1))


def _paint(colour: np.ndarray, shade: np.ndarray) -> np.ndarray:
    """(3,) colour x (H, W) shading -> (3, H, W)."""
    return colour[:, None, None] * shade[None]


def _texture_site(rng: np.random.Generator) -> tuple[float, float]:
    return rng.uniform(0.25, 0.75), rng.uniform(0.25, 0.75)


# ---------------------------------------------------------------------------------------------------------------------
# Categories. Each draws its scene from `rng` and returns it clean; lighting and noise are added afterwards.

WEAVE_WARP, WEAVE_WEFT = _colour((0.66, 0.58, 0.46)), _colour((0.52, 0.47, 0.40))
WOOD_EARLY, WOOD_LATE = _colour((0.82, 0.63, 0.42)), _colour((0.50, 0.31, 0.16))
STEEL = _colour((0.58, 0.59, 0.61))
NUT_STEEL, NUT_TABLE = _colour((0.62, 0.64, 0.67)), _colour((0.32, 0.50, 0.38))  # on a green cutting mat
CAPSULE_CAP, CAPSULE_BODY = _colour((0.72, 0.30, 0.20)), _colour((0.84, 0.82, 0.76))
CAPSULE_TABLE = _colour((0.45, 0.55, 0.62))  # a slate-blue tray
RUST, INK = _colour((0.95, 0.5, 0.22)), _colour((0.2, 0.25, 0.75))


def _weave(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, aa: float) -> _Scene:
    """Plain-woven fabric: 6 thick threads per image side each way, every thread alternately over and under."""
    threads = 6.0  # >= 5 px per thread at 32 px, so the weave stays legible
    # The web runs through the camera's field square and in register, give or take a twelfth of a thread.
    u, v = _rotate(x, y, 0.5, 0.5, rng.uniform(-0.01, 0.01))
    u = u * threads + rng.uniform(-0.08, 0.08)
    v = v * threads + rng.uniform(-0.08, 0.08)
    iu, iv = np.floor(u), np.floor(v)
    fu, fv = u - iu, v - iv
    warp_on_top = (iu + iv) % 2 == 0
    across = np.where(warp_on_top, fu, fv)
    along = np.where(warp_on_top, fv, fu)
    # A round yarn with dark gaps to its neighbours, dimming at both ends of a float where it dives under.
    yarn = np.clip(np.sin(math.pi * np.clip((across - 0.06) / 0.88, 0, 1)), 0, 1) ** 0.6
    yarn = yarn * (0.45 + 0.55 * np.clip(np.sin(math.pi * along), 0, 1) ** 0.5)
    # Diagonal twist of the fibres; only where the rendering resolves it (it would alias into noise at 64 px).
    twist_freq = threads * 3.2
    yarn = yarn * (1 + 0.1 * _band_limit(twist_freq, aa) * np.cos(2 * math.pi * (across + 3 * along)))
    # Each thread has its own slight thickness/dye irregularity.
    warp_tone = 1 + 0.03 * rng.standard_normal(64).astype(np.float32)
    weft_tone = 1 + 0.03 * rng.standard_normal(64).astype(np.float32)
    tone = np.where(warp_on_top, warp_tone[iu.astype(np.int64) % 64], weft_tone[iv.astype(np.int64) % 64])
    shade = (0.25 + 0.85 * yarn) * tone
    colour = np.where(warp_on_top[None], WEAVE_WARP[:, None, None], WEAVE_WEFT[:, None, None])
    image = colour * shade[None]
    # The dark gaps count as one of the surface's colours: a dark scratch or oil stain would vanish in them.
    tones = (WEAVE_WARP, WEAVE_WEFT, WEAVE_WEFT * 0.3)
    return _Scene(image=image, tones=tones, site=_texture_site, flat=_colour((0.05, 0.05, 0.06)))


def _wood(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, aa: float) -> _Scene:
    """Flat-sawn wood: growth rings of a log whose pith lies below the board, warped, with fine fibre streaks."""
    # Boards of one batch, cut alike and laid the same way: the ring pattern shifts and bends only a little.
    angle = rng.uniform(-0.015, 0.015)
    u, v = _rotate(x, y, 0.5, 0.5, angle)
    # Rings around a pith below the image; stretching x makes the elongated arches of flat-sawn boards.
    px, py = rng.uniform(-0.04, 0.04), rng.uniform(0.95, 1.0)
    r = np.hypot(0.6 * (u - px), v - py)
    warp = 0.06 * _waves(x, y, rng, 4, 0.5, 1.2)
    rings = r * 5.0 + warp + rng.uniform(-0.06, 0.06)  # 5 rings per unit radius: >= 6 px apart at 32 px
    g = rings - np.floor(rings)
    # Broad light earlywood, a narrower dark latewood band (planed smooth: soft on both sides at this scale).
    late = (0.5 - 0.5 * np.cos(2 * math.pi * g)) ** 3
    fibre = 0.02 * _waves(x, y, rng, 5, 9.0, 20.0, angle=math.pi / 2 + angle, spread=0.08)  # along the board
    shade = 1 + fibre + 0.025 * _waves(x, y, rng, 3, 0.5, 1.5)
    image = (WOOD_EARLY[:, None, None] * (1 - late) + WOOD_LATE[:, None, None] * late) * shade
    return _Scene(image=image, tones=(WOOD_EARLY, WOOD_LATE), site=_texture_site, flat=_colour((0.93, 0.84, 0.68)))


def _brushed_metal(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, aa: float) -> _Scene:
    """Brushed steel: fine streaks along x (random profiles across the brushing direction) and a broad sheen."""
    u, v = _rotate(x, y, 0.5, 0.5, rng.uniform(-0.01, 0.01))

    def streaks(knots: int) -> np.ndarray:
        # A random profile across the streaks, smoothed so it is not pixel noise, wrapped so any offset works.
        p = rng.standard_normal(knots)
        p = (np.roll(p, 1) + 2 * p + np.roll(p, -1)) / 2.45
        at = (v * knots + rng.uniform(0, knots)) % knots
        return np.interp(at, np.arange(knots + 1), np.append(p, p[0])).astype(np.float32)

    # Long coarse streaks everywhere, finer ones that come and go along the brushing direction.
    fade = 0.5 + 0.5 * np.cos(2 * math.pi * (rng.uniform(0.7, 1.5) * u + rng.uniform(0, 1)))
    sheen = np.exp(-(((u - rng.uniform(-0.04, 0.04)) / 0.35) ** 2))  # anisotropic reflection: a band across streaks
    shade = 0.9 + 0.04 * streaks(40) + 0.035 * streaks(90) * fade + 0.18 * sheen
    return _Scene(image=_paint(STEEL, shade), tones=(STEEL,), site=_texture_site, flat=_colour((0.05, 0.05, 0.06)))


def _nut(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, aa: float) -> _Scene:
    """A hexagon nut seen from above on a dark mat: chamfered corners, countersunk bore, turned face."""
    # Parts arrive in a fixture: they sit within a few thousandths of the image's side of its centre, nearly square.
    cx, cy = 0.5 + rng.normal(0, 0.006), 0.5 + rng.normal(0, 0.006)
    angle = rng.uniform(-0.03, 0.03)
    scale = rng.uniform(0.99, 1.01)
    apothem, bore = 0.3 * scale, 0.12 * scale

    def signed_distance(px: np.ndarray, py: np.ndarray) -> np.ndarray:
        hexagon = np.maximum(np.abs(px), np.maximum(np.abs(0.5 * px + 0.866 * py), np.abs(0.5 * px - 0.866 * py)))
        r = np.hypot(px, py)
        return np.maximum(np.maximum(hexagon - apothem, r - 1.1 * apothem), bore - r)  # chamfer and bore

    px, py = _rotate(x, y, cx, cy, angle)
    r = np.hypot(px, py) + 1e-6
    coverage = _fill(signed_distance(px, py), aa)
    lx, ly = _light_in_frame(angle)
    toward_light = (px * lx + py * ly) / r  # cosine between the radial direction and the light
    face = 0.95 + 0.05 * np.cos(2 * math.pi * 14 * r) + 0.08 * toward_light  # turned rings
    chamfer = _smoothstep(0.97 * apothem, 1.04 * apothem, r)
    countersink = 1 - _smoothstep(bore, 1.3 * bore, r)
    shade = face * (1 - chamfer) + (0.75 + 0.3 * toward_light) * chamfer
    shade = shade * (1 - countersink) + (0.55 - 0.3 * toward_light) * countersink  # the far wall faces the light
    foreground = _paint(NUT_STEEL, shade)

    # The cutting mat's printed grid, a line every eighth of the image (the mat is fixed under the camera).
    table = (1 + 0.02 * _waves(x, y, rng, 3, 1.0, 3.0)) * (1 - 0.35 * _grid_lines(x, y, 8, 0.014, aa))
    sx, sy = _rotate(x - 0.02, y - 0.025, cx, cy, angle)  # shadow cast down-right, away from the light
    shadow = 0.35 * np.clip(0.5 - signed_distance(sx, sy) / 0.03, 0, 1)
    background = _paint(NUT_TABLE, table * (1 - shadow))
    image = background + (foreground - background) * coverage[None]

    def to_image(rho: float, phi: float) -> tuple[float, float]:
        c, s = math.cos(angle), math.sin(angle)
        lx, ly = rho * math.cos(phi), rho * math.sin(phi)
        return cx + c * lx - s * ly, cy + s * lx + c * ly

    def site(rng: np.random.Generator) -> tuple[float, float]:
        return to_image(rng.uniform(0.19, 0.23) * scale, rng.uniform(0, 2 * math.pi))

    def edge_site(rng: np.random.Generator) -> tuple[float, float]:
        phi = rng.uniform(0, 2 * math.pi)
        # Distance from the centre to the hexagon's side along phi (sides at 0, 60, 120 degrees), or the chamfer.
        hexagon = apothem / max(abs(math.cos(phi - k * math.pi / 3)) for k in range(3))
        return to_image(min(hexagon, 1.1 * apothem) - BITE_INSET, phi)

    return _Scene(
        image=image,
        tones=(NUT_STEEL,),
        surroundings=(NUT_TABLE,),
        site=site,
        background=background,
        foreground=foreground,
        coverage=coverage,
        edge_site=edge_site,
    )


def _capsule(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, aa: float) -> _Scene:
    """A two-coloured gelatin capsule lying on a dark table, lit from the top left."""
    cx, cy = 0.5 + rng.normal(0, 0.006), 0.5 + rng.normal(0, 0.006)  # in a fixture, like the nut
    angle = rng.uniform(-0.02, 0.02)
    scale = rng.uniform(0.99, 1.01)
    half, radius = 0.24 * scale, 0.16 * scale  # half length of the straight part, and the radius

    def signed_distance(px: np.ndarray, py: np.ndarray) -> np.ndarray:
        return np.hypot(px - np.clip(px, -half, half), py) - radius

    px, py = _rotate(x, y, cx, cy, angle)
    coverage = _fill(signed_distance(px, py), aa)
    # Surface normal of the capsule (a swept sphere); Lambert plus a Blinn-Phong highlight.
    nx, ny = (px - np.clip(px, -half, half)) / radius, py / radius
    nz = np.sqrt(np.clip(1 - nx * nx - ny * ny, 0, 1))
    lx, ly = _light_in_frame(angle)
    lx, ly, lz = 0.6 * lx, 0.6 * ly, 0.8  # towards the light, which is in front too (z towards the camera)
    lambert = np.clip(lx * nx + ly * ny + lz * nz, 0, 1)
    hx, hy, hz = lx, ly, lz + 1  # halfway between light and camera, unnormalised
    norm = math.sqrt(hx * hx + hy * hy + hz * hz)
    specular = np.clip((hx * nx + hy * ny + hz * nz) / norm, 0, 1) ** 12  # a matte gelatin shell
    seam = 0.04 * scale
    cap = (px < seam)[None]
    colour = np.where(cap, CAPSULE_CAP[:, None, None], CAPSULE_BODY[:, None, None])
    groove = 1 - 0.3 * np.exp(-(((px - seam) / 0.012) ** 2))  # the cap's rim casts a thin line
    foreground = colour * ((0.3 + 0.75 * lambert) * groove)[None] + 0.3 * specular[None]

    table = 1 + 0.02 * _waves(x, y, rng, 3, 1.0, 3.0)
    sx, sy = _rotate(x - 0.02, y - 0.025, cx, cy, angle)
    shadow = 0.5 * np.clip(0.5 - signed_distance(sx, sy) / 0.03, 0, 1)
    background = _paint(CAPSULE_TABLE, table * (1 - shadow))
    image = background + (foreground - background) * coverage[None]

    def to_image(lx: float, ly: float) -> tuple[float, float]:
        c, s = math.cos(angle), math.sin(angle)
        return cx + c * lx - s * ly, cy + s * lx + c * ly

    def site(rng: np.random.Generator) -> tuple[float, float]:
        return to_image(rng.uniform(-half - 0.2 * radius, half + 0.2 * radius), rng.uniform(-0.4, 0.4) * radius)

    def edge_site(rng: np.random.Generator) -> tuple[float, float]:
        if rng.uniform() < 0.25:  # an end of the capsule
            return to_image(_sign(rng) * (half + radius - BITE_INSET), 0.0)
        return to_image(rng.uniform(-0.9, 0.9) * half, _sign(rng) * (radius - BITE_INSET))

    return _Scene(
        image=image,
        tones=(CAPSULE_CAP, CAPSULE_BODY),
        surroundings=(CAPSULE_TABLE,),
        site=site,
        background=background,
        foreground=foreground,
        coverage=coverage,
        edge_site=edge_site,
    )


_RENDERERS: dict[str, Callable[[np.ndarray, np.ndarray, np.random.Generator, float], _Scene]] = {
    "weave": _weave,
    "wood": _wood,
    "brushed_metal": _brushed_metal,
    "nut": _nut,
    "capsule": _capsule,
}

# ---------------------------------------------------------------------------------------------------------------------
# Defects. Each returns the defective image and the defect's coverage alpha (H, W); the mask is alpha > 0.5. Defects on
# objects are clipped to the object (a scratch does not continue onto the table), except a foreign particle lying on it.


def _on_surface(scene: _Scene, alpha: np.ndarray) -> np.ndarray:
    return alpha if scene.coverage is None else alpha * scene.coverage


def _contrasting(
    scene: _Scene, options: dict[str, Callable[[np.ndarray], np.ndarray]], rng: np.random.Generator
) -> Callable[[np.ndarray], np.ndarray]:
    """Pick one of `options` (colour changes) that shows on every nominal colour of the surface: any that contrasts
    at least 70% as much as the best one, all equally likely."""
    contrast = {k: min(_colour_distance(f(t), t) for t in scene.tones) for k, f in options.items()}
    best = max(contrast.values())
    good = [k for k, c in contrast.items() if c >= 0.7 * best]
    return options[good[rng.integers(len(good))]]


def _colour_distance(a: np.ndarray, b: np.ndarray) -> float:
    """How different two (3,) colours look: the lightness difference plus twice the hue difference, so a rust or
    ink stain on grey steel counts as strongly as a much darker oil stain (a detector notices a new hue at least
    as readily as a change of brightness)."""
    d = a - b
    lightness = float(d.mean())
    return 3 * abs(lightness) + 2 * float(np.abs(d - lightness).sum())


def _scratch(scene: _Scene, x: np.ndarray, y: np.ndarray, rng: np.random.Generator, aa: float) -> Painted:
    """A long gouge, tapering at both ends: an arc of a circle, much brighter or darker than the surface."""
    cx, cy = scene.site(rng)
    length, width = rng.uniform(0.26, 0.38), rng.uniform(0.065, 0.085)  # 8-12 px long, 2-2.7 px wide at 32 px
    heading = rng.uniform(0, 2 * math.pi)
    bend = length * rng.uniform(0.7, 2.5) * _sign(rng)  # radius of the arc, signed: curving left or right
    ox, oy = cx - bend * math.sin(heading), cy + bend * math.cos(heading)  # the arc's centre
    a0 = math.atan2(cy - oy, cx - ox)
    span = length / (2 * abs(bend))  # half the arc's angle
    # Nearest point of the arc: clip the angle around the arc's centre to the arc's span.
    t = (np.arctan2(y - oy, x - ox) - a0 + math.pi) % (2 * math.pi) - math.pi
    t = np.clip(t, -span, span)
    r = abs(bend)
    d = np.hypot(x - (ox + r * np.cos(a0 + t)), y - (oy + r * np.sin(a0 + t)))
    half_width = 0.5 * width * np.sqrt(1 - 0.7 * (t / span) ** 2)
    alpha = _on_surface(scene, _fill(d - half_width, aa))
    change = _contrasting(scene, {"dark": lambda c: c * 0.15, "bright": lambda c: c * 0.1 + 0.9}, rng)
    target = change(scene.image)
    return scene.image + (target - scene.image) * alpha[None], alpha


def _hole(scene: _Scene, x: np.ndarray, y: np.ndarray, rng: np.random.Generator, aa: float) -> Painted:
    """A round pit: a dark floor, the inner wall facing the light lit up."""
    cx, cy = scene.site(rng)
    radius = rng.uniform(0.065, 0.085)  # 4-5.5 px across at 32 px
    dx, dy = x - cx, y - cy
    d = np.hypot(dx, dy) + 1e-6
    alpha = _on_surface(scene, _fill(d - radius, aa))
    # Inside a pit the wall away from the light faces it; the floor and the near wall are in shadow.
    lit = np.clip(-(dx * LX + dy * LY) / d, 0, 1) * np.clip(d / radius, 0, 1) ** 2
    target = scene.image * (0.06 + 0.4 * lit)[None]
    return scene.image + (target - scene.image) * alpha[None], alpha


def _stain(scene: _Scene, x: np.ndarray, y: np.ndarray, rng: np.random.Generator, aa: float) -> Painted:
    """A soft irregular discoloured blob (oil, rust, bleach or ink), darker at its rim where the pigment collects."""
    cx, cy = scene.site(rng)
    dx, dy = x - cx, y - cy
    d = np.hypot(dx, dy)
    outline = _blob_radius(np.arctan2(dy, dx), rng.uniform(0.08, 0.11), rng, (2, 3, 4), 0.12)
    # 1 inside, 0.5 on the outline, a soft edge of fixed width (so a big stain's fringe is no wider than a small one's)
    shape = np.clip(0.5 + (outline - d) / 0.04, 0, 1)
    rim = 1 + 0.3 * np.exp(-(((d / outline - 0.92) / 0.1) ** 2))
    opacity = np.clip(rng.uniform(0.85, 0.95) * shape * rim, 0, 1)
    stains = {
        "oil": lambda c: c * 0.25,
        "rust": lambda c: c * 0.3 + _per_channel(RUST, c) * 0.55,
        "bleach": lambda c: c * 0.2 + 0.8,
        "ink": lambda c: c * 0.3 + _per_channel(INK, c) * 0.5,
    }
    target = _contrasting(scene, stains, rng)(scene.image)
    opacity = _on_surface(scene, opacity)
    return scene.image + (target - scene.image) * opacity[None], _on_surface(scene, shape)


def _missing(scene: _Scene, x: np.ndarray, y: np.ndarray, rng: np.random.Generator, aa: float) -> Painted:
    """Objects: a bite out of the outline, showing the table, its fresh fracture face catching the light. Textures:
    a torn-out or chipped-out chunk, showing what lies beneath (the dark backing of a web or sheet, the pale fresh
    wood of a board)."""
    if scene.edge_site is not None:  # an object
        cx, cy = scene.edge_site(rng)
        d = np.hypot(x - cx, y - cy) - rng.uniform(0.1, 0.13)  # signed distance to the bite's outline
        bite = _fill(d, aa)
        face = _fill(d - 0.03, aa) * (1 - bite)  # a band along the break, on the object's side
        fracture = scene.foreground * 0.3 + 0.7
        gone, broken = scene.coverage * bite, scene.coverage * face
        image = scene.image + (scene.background - scene.foreground) * gone[None]
        image = image + (fracture - scene.foreground) * broken[None]
        return image, gone + broken
    cx, cy = scene.site(rng)
    dx, dy = x - cx, y - cy
    radius = _blob_radius(np.arctan2(dy, dx), rng.uniform(0.08, 0.11), rng, (2, 3, 5), 0.15)
    alpha = _fill(np.hypot(dx, dy) - radius, aa)
    target = _paint(scene.flat, 1 + 0.05 * _waves(x, y, rng, 3, 2.0, 5.0))
    return scene.image + (target - scene.image) * alpha[None], alpha


def _foreign(scene: _Scene, x: np.ndarray, y: np.ndarray, rng: np.random.Generator, aa: float) -> Painted:
    """A small fragment of another material lying on the surface: irregular, elongated, its own colour and grain."""
    cx, cy = scene.site(rng)
    u, v = _rotate(x, y, cx, cy, rng.uniform(0, math.pi))
    u = u / rng.uniform(1.2, 2.0)  # elongated along its own axis
    r = np.hypot(u, v) + 1e-6
    alpha = _fill(r - _blob_radius(np.arctan2(v, u), rng.uniform(0.06, 0.075), rng, (3, 4, 6), 0.15), aa)
    # A colour far from every colour of the surface, so the particle contrasts wherever it lies.
    distance = [min(_colour_distance(c, t) for t in scene.tones + scene.surroundings) for c in FOREIGN_COLOURS]
    distance = np.array(distance)
    colour = FOREIGN_COLOURS[rng.choice(np.flatnonzero(distance >= np.sort(distance)[-2]))]
    grain = 1 + 0.12 * _waves(x, y, rng, 4, 12.0, 24.0)
    relief = 1 + 3.0 * ((x - cx) * LX + (y - cy) * LY)  # the side towards the light is lit
    target = _paint(colour, np.clip(grain * relief, 0.4, 1.5))
    return scene.image + (target - scene.image) * alpha[None], alpha


_PAINTERS = {
    "scratch": _scratch,
    "hole": _hole,
    "stain": _stain,
    "missing": _missing,
    "foreign": _foreign,
}
