"""The report's section "Where the model looks": pixel AUROC and AUPRO per variant, the component effects on them,
why they are missing where they are, and the galleries of the same images side by side across variants."""

from __future__ import annotations

from .analysis import Analysis
from .pixels import GALLERY_SEEDS, PIXEL_METRICS
from .render_effects import interval_text
from .stats import Effect
from .text import md_table, mean_std, num, signed


def pixel_section(a: Analysis) -> list[str]:
    p = a.pixels
    if p is None:
        return []
    lines = [
        "## Where the model looks",
        "",
        "Anomaly maps: each pixel's squared reconstruction error (mean over channels), smoothed with a Gaussian "
        "(`model.map_sigma`, 4 px at 256 px scaled to the image size). Pixel AUROC ranks every test pixel against "
        "the masks; AUPRO is the mean overlap with each defect region, integrated up to a false-positive rate of "
        "0.3 and normalised (MVTec AD's PRO). Mean ± std over seeds (per seed, the mean over categories).",
        "",
    ]
    if not p.measured:
        reasons = "; ".join(f"{why} ({n} trials)" for why, n in p.notes.items()) or "no successful trial"
        return [*lines, f"No pixel metrics: {reasons}.", ""]
    headers = ["variant", *PIXEL_METRICS.values()]
    lines += [
        *md_table(headers, [[f"`{v}`", *(mean_std(m[k]) for k in PIXEL_METRICS)] for v, m in p.per_seed.items()]),
        "",
    ]
    for metric, effects in p.effects.items():
        shown = [e for e in effects if e.n > 0]
        if not shown:
            continue
        lines += [
            f"Effects on {PIXEL_METRICS[metric]} (paired as for image AUC, judged as their own family):",
            "",
            *md_table(
                ["component", "change", "pairs", "effect [interval]", "verdict"],
                [[f"`{e.name}`", e.change, str(e.n), _estimate(e), f"**{e.judged}**"] for e in shown],
            ),
            "",
        ]
    if p.notes:
        lines += ["Without pixel metrics: " + "; ".join(f"{why} ({n} trials)" for why, n in p.notes.items()) + ".", ""]
    if len(p.seconds):
        lines += [f"Computing the pixel metrics took {num(100 * p.seconds.median(), 2)}% of a trial's scoring time "
                  "(median; the maps themselves are made within scoring).", ""]  # fmt: skip
    lines += _galleries(a)
    return lines


def _galleries(a: Analysis) -> list[str]:
    g = a.pixels.galleries
    if g.empty:
        return []
    lines = [
        "### Galleries",
        "",
        "Per row: the input, the reconstruction, the anomaly map over the input, the mask. The first rows are the "
        "same test images for every variant (chosen by the dataset and the seed, not by a model), then each trial's "
        "three highest-scoring normal images (false alarms) and three lowest-scoring defective ones (misses).",
        "",
    ]
    variants = [v for v in a.design.order if v in set(g["variant"])]
    for category in dict.fromkeys(g["category"]):
        mine = g[g["category"] == category]
        seeds = sorted(mine["seed"].unique())[:GALLERY_SEEDS]
        for seed in seeds:
            cells = []
            for v in variants:
                hit = mine[(mine["seed"] == seed) & (mine["variant"] == v)]
                cells.append(f"![{v}]({hit['gallery'].iloc[0]})" if len(hit) else "-")
            lines += [f"`{category}`, seed {seed}:", "", *md_table([f"`{v}`" for v in variants], [cells]), ""]
    return lines


def _estimate(e: Effect) -> str:
    """The effect and its corrected interval, as the image-AUC effects table gives them."""
    mean = e.decision.mean if e.decision else e.mean
    return f"{signed(mean)} {interval_text(e)}"
