"""`tools/gpu_check.py`: its GPU plan fits the 10-minute budget, it refuses a machine without CUDA in one line, and
its CPU smoke runs all three parts through the real entry points and writes the table (Markdown and JSON)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "gpu_check.py"
MODELS = ("skip_ganomaly", "ssagan attention=false", "ssagan", "ssagan attention_kv_pool=2")


def _load():
    """The script as a module (registered first: its dataclasses look their module up while being made)."""
    if "gpu_check" not in sys.modules:
        spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules["gpu_check"] = module
        spec.loader.exec_module(module)
    return sys.modules["gpu_check"]


def _env() -> dict[str, str]:
    """No GPU and no Ray cluster from the environment: the script behaves the same on every machine."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    env.pop("RAY_ADDRESS", None)
    return env


def test_the_gpu_plan_is_the_issue_s_and_fits_in_ten_minutes() -> None:
    gpu_check = _load()
    plan = gpu_check.GPU
    assert plan.limit_s() < 600  # every part at its time limit, plus the time to stop each
    assert [(s.image_size, s.batch_size) for s in plan.sizes] == [(64, 32), (128, 16), (256, 8)]
    assert gpu_check.MODELS == MODELS and gpu_check.COMPUTE_DTYPES == ("fp32", "bf16")
    assert (plan.device, plan.gpus_per_trial, plan.require_overlap) == ("cuda", 0.25, True)
    assert "--num-gpus" in plan.study_args


def test_the_overlap_of_trial_intervals() -> None:
    overlap = _load().time_overlap
    t = "2026-12-02T10:00:{:02d}+00:00".format
    together = overlap([t(0), t(1), t(2), t(2)], [t(20), t(15), t(30), t(12)])
    assert together["all_at_once_s"] == 10 and together["peak"] == 4 and together["span_s"] == 30
    assert together["durations_s"] == [20, 14, 28, 10] and together["sum_s"] == 72
    one_after_another = overlap([t(0), t(10)], [t(10), t(20)])  # one ends the second the next starts: never together
    assert one_after_another["all_at_once_s"] == 0 and one_after_another["peak"] == 1


def test_without_cuda_it_says_so_in_one_line_and_exits_2(tmp_path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out)], cwd=ROOT, env=_env(), capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: no CUDA device (torch.cuda.is_available() is False); this script checks a GPU machine"
    ]
    assert proc.stdout == "" and not out.exists()


@pytest.mark.slow
def test_the_cpu_smoke_runs_every_part_and_writes_one_table(tmp_path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--cpu-smoke", "--out", str(out)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = (out / "gpu_check.md").read_text()
    assert table.strip() in proc.stdout  # the printed table is the written one
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    by_part: dict[str, list[list[str]]] = {}
    for cells in rows:
        by_part.setdefault(cells[0].removeprefix("| "), []).append(cells)

    bench = by_part["benchmark 32 px, batch 4"]
    assert [c[1] for c in bench] == ["conditions"] + [f"{m} {d}" for m in MODELS for d in ("fp32", "bf16")]
    for _, _, measured, status in bench[1:]:
        assert "img/s" in measured and "x, " in measured and "GFLOP/image" in measured and status == "ok |"
    assert bench[1][2].split(", ")[-2] == "1.00x"  # the first row is the reference

    ((_, case, measured, status),) = by_part["CUDA tests"]
    assert case == "pytest -m cuda tests/test_cuda.py" and status == "skipped: no CUDA |"
    assert measured.startswith("0 passed, 0 failed, 0 errors, ") and " skipped in " in measured

    ((_, case, measured, status),) = by_part["study"]
    assert case == "gpus_per_trial 0, 4 trials" and status == "ok |"
    assert measured.startswith("4 of 4 trials ok on cpu; wall ") and "trial times add up to" in measured
    trials = by_part["study trial"]
    assert len(trials) == 4 and all(c[3] == "ok |" and " s (training " in c[2] and "auc " in c[2] for c in trials)

    report = json.loads((out / "gpu_check.json").read_text())
    assert report["conditions"]["mode"] == "cpu-smoke" and report["conditions"]["exit_status"] == 0
    assert len(report["table"]) == len(rows)
    assert [r["case"] for r in report["table"]][: len(bench)] == [c[1] for c in bench]
    assert len(report["benchmark"]["32"]["rows"]) == 8
    assert all(r["images_per_second"] > 0 for r in report["benchmark"]["32"]["rows"])
    assert report["tests"]["skipped"] == report["tests"]["tests"] > 0
    study = report["study"]
    assert study["peak"] >= 1 and len(study["trials"]) == 4 and study["wall_seconds"] > study["span_s"] > 0
    assert {t["device"] for t in study["trials"]} == {"cpu"} and all(t["auc"] >= 0 for t in study["trials"])
