"""Where the model looks: the report's pixel-level numbers, computed once (`pixel_results(...) -> Pixels | None`).

Per variant the mean and spread over seeds of `pixel_auc` and `aupro` (per seed, the mean over categories, as the
variant table does for image AUC); the component effects on each pixel metric, judged like the image-AUC effects
but as their own family (one Bonferroni count per metric); the reasons pixel metrics are missing; and the gallery of
each trial (`galleries/<hash>.png`), arranged so that the same seed and category sit side by side across variants.
None for results without pixel columns (ledgers written before they existed).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..study.schema import Study
from .factors import Design
from .stats import Effect

PIXEL_METRICS = {"pixel_auc": "pixel AUROC", "aupro": "AUPRO (FPR <= 0.3)"}
GALLERY_SEEDS = 1  # galleries shown per (category, variant): the first seed's


@dataclass(frozen=True)
class Pixels:
    per_seed: dict[str, dict[str, pd.Series]]  # variant -> metric -> one mean per seed (NaN rows dropped)
    effects: dict[str, list[Effect]]  # metric -> the main effects on it (grid and loco designs)
    notes: dict[str, int]  # why pixel metrics are NaN -> how many successful trials
    galleries: pd.DataFrame  # category, seed, variant, gallery (path relative to the output folder)
    seconds: pd.Series = field(default_factory=pd.Series)  # pixel_seconds / score_seconds per trial

    @property
    def measured(self) -> bool:
        return any(len(s) for metrics in self.per_seed.values() for s in metrics.values())


def pixel_results(
    study: Study | None, rows: pd.DataFrame, ok: pd.DataFrame, design: Design, settings: Any, effects_of
) -> Pixels | None:
    """The pixel numbers of a study's rows; `effects_of(study, rows, design, settings)` is the analysis's
    `study_effects` (passed in, so that pixel effects are made exactly as image-AUC effects are)."""
    if "pixel_auc" not in rows:
        return None
    per_seed: dict[str, dict[str, pd.Series]] = {}
    for variant in design.order:
        mine = ok[ok["variant"] == variant]
        per_seed[variant] = {
            m: mine.groupby("seed")[m].mean().dropna() if len(mine) else pd.Series(dtype=float) for m in PIXEL_METRICS
        }
    effects = {}
    if design.kind in ("grid", "loco") and ok["pixel_auc"].notna().any():
        for metric in PIXEL_METRICS:
            effects[metric], _ = effects_of(study, rows, design, dataclasses.replace(settings, metric=metric))
    notes = (
        ok.loc[ok["pixel_auc"].isna(), "pixel_note"].fillna("").replace("", "not computed")
        if "pixel_note" in ok
        else pd.Series(dtype=str)
    )
    galleries = pd.DataFrame(columns=["category", "seed", "variant", "gallery"])
    if "gallery" in ok:
        shown = ok[ok["gallery"].fillna("") != ""]
        galleries = shown[["category", "seed", "variant", "gallery"]].sort_values(["category", "seed"])
    seconds = (ok["pixel_seconds"] / ok["score_seconds"]).dropna() if "pixel_seconds" in ok else pd.Series(dtype=float)
    return Pixels(per_seed, effects, notes.value_counts().to_dict(), galleries, seconds)
