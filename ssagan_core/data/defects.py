"""The defects of the synthetic dataset: five painters (scratch, hole, stain, missing piece, foreign particle), each
turning a clean scene into a defective image and the defect's coverage, with colours chosen to contrast with the
surface they lie on."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .scenes import LX, LY, _blob_radius, _colour, _fill, _paint, _per_channel, _rotate, _Scene, _sign, _waves

Painted = tuple[np.ndarray, np.ndarray]  # a defective image (3, H, W) and the defect's coverage alpha (H, W)

RUST, INK = _colour((0.95, 0.5, 0.22)), _colour((0.2, 0.25, 0.75))  # stain colours that show on grey steel
# Foreign particles take one of these colours, far from the surface they lie on (blue, green, black, yellow, white).
FOREIGN_COLOURS = np.array(
    [[0.15, 0.3, 0.8], [0.2, 0.55, 0.2], [0.06, 0.06, 0.07], [0.9, 0.8, 0.2], [0.92, 0.92, 0.95]], np.float32
)


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
