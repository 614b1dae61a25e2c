"""The scenes of the synthetic dataset: the five categories' renderers (three textures, two objects) and the drawing
helpers they and the defect painters share, all in normalised coordinates (the image is the unit square).

Each renderer draws its scene from its own random stream and returns it clean, with what a defect painter needs to
know about it (`_Scene`); `synthetic` adds the defect, lighting and sensor noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

LX, LY = -0.6, -0.8  # direction towards the light in image coordinates (x right, y down): the top left
BITE_INSET = 0.025  # a piece broken off an object is centred this far inside its outline: a chunk, not a nick

Site = Callable[[np.random.Generator], tuple[float, float]]


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

    `x`, `y` must be the pixel grid of `synthetic._grid`: a plane wave is separable in it,
    cos(a + b) = cos a cos b - sin a sin b with `a` depending on the column only and `b` on the row only, so the
    full-size work is two outer products."""
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
