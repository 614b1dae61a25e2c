"""`python -m ablation.report OUT_DIR` (or `.../trials.parquet`): render a study's `report.md` and its figures from
the output folder alone (the Parquet files and the saved study; no Ray, no torch, no training). `ablation.run` calls
`render_report` at the end of every study. Exit status: 0 written, 2 bad input (one line, no traceback).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..results.ledger import ResultsError, load_results, write_text
from .analysis import analyse
from .figures import FIGURES
from .render import FigureWriter, render

REPORT_FILE, FIGURES_DIR = "report.md", "figures"


def render_report(out: Path) -> Path:
    """Write `<out>/report.md` and its figures (in `<out>/figures/`) from the output folder; return report.md."""
    results = load_results(out)
    analysis = analyse(results)
    figs = FigureWriter(results.out / FIGURES_DIR, len(analysis.categories))
    text = render(analysis, figs)
    path = results.out / REPORT_FILE
    write_text(text, path)  # the figures were written first, so every link in the new report resolves
    for figure in FIGURES:  # an earlier render's figure that this report does not link
        if figure.file not in figs.written:
            (figs.folder / figure.file).unlink(missing_ok=True)
    return path


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ablation.report", description="Render a study's report.md and figures from its Parquet files."
    )
    p.add_argument("results", help="the study's output folder, or its trials.parquet")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        path = render_report(Path(args.results))
    except ResultsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
