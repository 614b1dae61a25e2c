"""The layout holds: imports point one way (study <- results <- report <- run, and ablation -> ssagan_core), there are
no import circles, and the report runs on an output folder without torch, Ray or the model library."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ablation.docs import module_imports

from .test_report import SEARCH, base_auc, grid_rows, grid_study, search_rows, write_results

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("study", "results", "report", "run")
# Which rooms each room may import (at run time; `if TYPE_CHECKING:` imports are for type checkers only).
ALLOWED = {"study": set(), "results": {"study"}, "report": {"results", "study"}, "run": {"study", "results", "report"}}
# What the report and the ledger may take from the study room and the model library: plain data, no torch.
LIGHT = {"ablation.study.schema", "ssagan_core", "ssagan_core.presets"}


def test_rooms_import_one_way() -> None:
    for module, imported in module_imports().items():
        parts = module.split(".")
        room = parts[1] if len(parts) > 1 and parts[1] in ROOMS else None
        if room is None:
            continue
        for target in imported:
            tparts = target.split(".")
            if tparts[0] == "ablation" and len(tparts) > 1 and tparts[1] in ROOMS and tparts[1] != room:
                assert tparts[1] in ALLOWED[room], f"{module} imports {target}: {room}/ must not import {tparts[1]}/"
            if room in ("report", "results") and (tparts[0] in ("ssagan_core", "torch", "ray")):
                assert target in LIGHT, f"{module} imports {target}: {room}/ runs without the model library"
            if room in ("report", "results") and target.startswith("ablation.study"):
                assert target in LIGHT | {"ablation.study"}, f"{module} imports {target}: only the schema is light"


def test_no_import_circles() -> None:
    graph = {m: {i for i in imported if i.startswith("ablation")} for m, imported in module_imports().items()}
    assert len(graph) > 25 and graph["ablation.run.cli"]  # the graph was read
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        assert module not in path, "import circle: " + " -> ".join([*path[path.index(module) :], module])
        if module in done:
            return
        for target in sorted(graph.get(module, ())):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_the_presets_table_is_plain_data() -> None:
    """The table the report reads loads nothing but itself (and the lazy package around it): no torch, no numpy."""
    code = (
        "import sys, ssagan_core.presets; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ssagan_core', 'torch', 'numpy')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['ssagan_core', 'ssagan_core.presets']"


def test_the_report_runs_without_torch_ray_or_the_model_library(tmp_path) -> None:
    """`python -m ablation.report` on a grid study (every figure but the search's) and a search study (Optuna's
    importances), in a fresh interpreter: which modules did it load?"""
    grid = {"grid": {"model.attention": [True, False], "model.conv": ["dsc", "standard"]}}
    rows = grid_rows(
        lambda f, s, c: base_auc(s, c) + 0.03 * f["attention"],
        {"attention": [True, False], "conv": ["dsc", "standard"]},
    )
    folders = [
        write_results(tmp_path / "grid", rows, grid_study(grid), scores=True, history=True),
        write_results(tmp_path / "search", search_rows(), grid_study(SEARCH, seeds=(0, 1), categories=("nut",))),
    ]
    code = (
        "import json, sys\n"
        "from ablation.report.cli import main\n"
        f"codes = [main([folder]) for folder in {[str(f) for f in folders]!r}]\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ray', 'ssagan_core', 'ablation'))\n"
        "print(json.dumps({'codes': codes, 'loaded': loaded}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["codes"] == [0, 0]
    loaded = result["loaded"]
    assert not [m for m in loaded if m.split(".")[0] in ("torch", "ray")], loaded
    assert {m for m in loaded if m.startswith("ssagan_core")} <= {"ssagan_core", "ssagan_core.presets"}, loaded
    assert not [m for m in loaded if m.startswith(("ablation.run", "ablation.study.load", "ablation.study.design"))]
    assert (folders[0] / "report.md").exists() and (folders[1] / "figures" / "importances.png").exists()
