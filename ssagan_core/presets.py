"""The model presets as one table: each preset's switch values, loss weights, and what its network fixes.

The single source of these facts for the whole project: `ModelConfig` fills its defaults and refuses contradictions
from it, the study design drops what a baseline fixes, the report orders a switch's values and picks its "off"
level, and the paper comparison recognises a run at its paper settings. Plain data, standard library only, so the
report can read it without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass

# The four architecture switches of the paper's model (section 3), each with the paper's choice first and the
# Skip-GANomaly choice ("off") second.
SWITCHES: dict[str, tuple] = {
    "attention": (True, False),
    "conv": ("dsc", "standard"),
    "down": ("maxpool", "strided"),
    "up": ("bilinear", "transposed"),
}
LOSS_WEIGHTS = ("w_adv", "w_ctx", "w_lat")


@dataclass(frozen=True)
class Preset:
    """One `ModelConfig.model` value: the settings it starts from and the ones its network does not let you change."""

    name: str
    switches: dict[str, object]  # switch -> value
    weights: dict[str, float]  # w_adv, w_ctx, w_lat
    fixes: tuple[str, ...]  # fields fixed by the network: a different value is an error, a baseline variant drops them
    source: str  # where the values come from

    @property
    def settings(self) -> dict[str, object]:
        """The switch values and loss weights: the preset's paper settings."""
        return {**self.switches, **self.weights}


_OFF = {name: values[1] for name, values in SWITCHES.items()}
_PAPER = {name: values[0] for name, values in SWITCHES.items()}
_BASELINE = tuple(SWITCHES)  # a baseline's network has no attention, standard 3x3 convs, strided down, transposed up

PRESETS: dict[str, Preset] = {
    "ssagan": Preset(
        "ssagan",
        _PAPER,
        {"w_adv": 0.5, "w_ctx": 0.3, "w_lat": 0.2},
        fixes=(),
        source="the paper, sections 3 and 4.2",
    ),
    "skip_ganomaly": Preset(
        "skip_ganomaly",
        _OFF,
        {"w_adv": 1.0, "w_ctx": 50.0, "w_lat": 1.0},
        fixes=_BASELINE,
        source="the official Skip-GANomaly networks and options.py",
    ),
    "ganomaly": Preset(
        "ganomaly",
        _OFF,
        {"w_adv": 1.0, "w_ctx": 50.0, "w_lat": 1.0},
        fixes=_BASELINE,
        source="the official GANomaly code, options.py",
    ),
    "anogan": Preset(
        "anogan",
        _OFF,
        {"w_adv": 1.0, "w_ctx": 0.0, "w_lat": 0.0},
        fixes=(*_BASELINE, "w_ctx", "w_lat"),  # trained as a plain GAN: no reconstruction or latent loss
        source="Schlegl et al. 2017 (a DCGAN)",
    ),
}
MODELS: tuple[str, ...] = tuple(PRESETS)
