"""`python tools/gpu_check.py [--reference PATH] [--out DIR]`: check a CUDA machine in one go and print one table.

Three parts, each a subprocess with its own time limit; a part that fails or runs out of time is recorded in the table
and the check goes on:

1. **Benchmark** (`python -m ssagan_core.benchmark --device cuda --compute-dtype fp32 bf16`): training images per
   second of `skip_ganomaly`, `ssagan attention=false`, `ssagan` (the paper's setting) and
   `ssagan attention_kv_pool=2` at 64 px (batch 32), 128 px (batch 16) and 256 px (batch 8), with the ratio to the
   first row (the official Skip-GANomaly networks with `--reference PATH`, else `skip_ganomaly` fp32).
2. **CUDA tests** (`pytest -m cuda tests/test_cuda.py`): a train step of every preset on the GPU, bf16, the
   attention's memory-efficient kernel, bit-identical `deterministic` runs, no host sync between reports, the
   sync-free discriminator reset, and four fractional-GPU trials on one device.
3. **Study** (`tools/gpu_check_study.yaml` on a local Ray instance with one GPU): four trials with
   `gpus_per_trial: 0.25`, checked to have run at the same time (their rows' `started_at` / `finished_at`) on CUDA.

The table (every rate and ratio, the test counts, the study's wall time, each trial's time and the overlap) is printed
and written to `OUT/gpu_check.md` and `OUT/gpu_check.json` (default OUT: `gpu_check/`), with each part's log in
`OUT/logs/`. Exit status: 0 every part passed, 1 some part failed, 2 no CUDA device (one line).

Sizes, chosen so the whole check stays under 10 minutes on one H200 whatever happens: every part has a time limit
(`Plan.limit_s`: 65 + 75 + 170 s for the three benchmark sizes, 120 s for the tests, 90 s for the study, plus 10 s
each to stop a part cleanly: 570 s at most). The benchmark's iterations shrink with the image size because the cost of
a step grows with it (the first stage's attention has N = H x W tokens, so its N^2 work is 16x larger at each doubling
of the side): 64 px 3 rounds of 20 timed iterations after 3 warm-up ones, 128 px 3 rounds of 12, 256 px 2 rounds of 5
after 2 (enough for a stable median at a few seconds per model and round, with the models taking turns so drift hits
them alike). The 256 px limit is the largest because the benchmark counts each row's FLOPs on the CPU, where the
paper's first-stage attention at 65,536 tokens is the slow part. These are estimates: no GPU run has been made yet.

`--cpu-smoke` runs the same three parts on the CPU at tiny sizes (32 px, batch 4, 2 iterations, 1 round, a few
channels; the study at 32 px with four CPU trials; the CUDA tests collected and skipped), in about a minute, so CI can
check that the script itself works.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # its parts module, also when loaded by file path (tests)
from gpu_check_parts import (
    STOP_GRACE_S,
    Row,
    counted,
    last_line,
    read_junit,
    render_table,
    run_command,
    time_overlap,
)

STUDY = Path(__file__).resolve().with_name("gpu_check_study.yaml")
NO_CUDA = "error: no CUDA device (torch.cuda.is_available() is False); this script checks a GPU machine"
MODELS = ("skip_ganomaly", "ssagan attention=false", "ssagan", "ssagan attention_kv_pool=2")
COMPUTE_DTYPES = ("fp32", "bf16")
TINY = "base_channels=4 max_channels=16 ndf=4 nz=8"  # --cpu-smoke: the real networks, a few channels wide


@dataclass(frozen=True)
class BenchSize:
    """One benchmark run: an image size and batch, the timed iterations, and the subprocess's time limit."""

    image_size: int
    batch_size: int
    warmup: int
    iterations: int
    rounds: int
    limit_s: int


@dataclass(frozen=True)
class Plan:
    """What one mode runs: the GPU check itself, or its tiny CPU twin (`--cpu-smoke`)."""

    mode: str  # "gpu" | "cpu-smoke"
    device: str  # the benchmark's --device
    sizes: tuple[BenchSize, ...]
    model_suffix: str  # appended to every model spec (tiny widths in the smoke)
    bench_args: tuple[str, ...]
    tests_limit_s: int
    study_args: tuple[str, ...]  # the runner's options beyond the study file and --out
    study_limit_s: int
    study_device: str  # what every study row's `device` starts with
    gpus_per_trial: float
    require_overlap: bool  # the four trials must have run at once (the point of fractional GPUs)
    hide_gpus: bool  # the children see no GPU (the smoke behaves the same on any machine)

    def limit_s(self) -> int:
        """The longest the check can take: every part at its limit, plus the time to stop it."""
        parts = [s.limit_s for s in self.sizes] + [self.tests_limit_s, self.study_limit_s]
        return sum(parts) + STOP_GRACE_S * len(parts)


GPU = Plan(
    mode="gpu",
    device="cuda",
    sizes=(
        BenchSize(64, 32, warmup=3, iterations=20, rounds=3, limit_s=65),
        BenchSize(128, 16, warmup=3, iterations=12, rounds=3, limit_s=75),
        BenchSize(256, 8, warmup=2, iterations=5, rounds=2, limit_s=170),
    ),
    model_suffix="",
    bench_args=(),
    tests_limit_s=120,
    study_args=("--num-gpus", "1"),
    study_limit_s=90,
    study_device="cuda",
    gpus_per_trial=0.25,
    require_overlap=True,
    hide_gpus=False,
)
CPU_SMOKE = Plan(
    mode="cpu-smoke",
    device="cpu",
    sizes=(BenchSize(32, 4, warmup=1, iterations=2, rounds=1, limit_s=120),),
    model_suffix=TINY,
    bench_args=("--threads", "1"),
    tests_limit_s=120,
    study_args=(
        "--num-cpus",
        "4",  # four one-CPU trials at once, as on the GPU (Ray counts CPUs; it does not pin them)
        "--set",
        "resources.gpus_per_trial=0",
        *("--set", "dataset.image_size=32", "--set", "dataset.n_train=16"),
        *("--set", "dataset.n_test_good=4", "--set", "dataset.n_test_defective=4"),
        *(arg for pair in TINY.split() for arg in ("--set", f"model.{pair}")),
        *("--set", "train.iterations=2", "--set", "train.batch_size=4"),
        *("--set", "train.log_every=1", "--set", "train.eval_every=1"),
    ),
    study_limit_s=180,
    study_device="cpu",
    gpus_per_trial=0,
    require_overlap=False,  # informative only: on a small, busy CPU the tiny trials may not all start together
    hide_gpus=True,
)


@dataclass
class Check:
    """Everything the check found: the table's rows and each part's raw figures (for the JSON)."""

    plan: Plan
    out: Path
    env: dict[str, str]
    reference: str | None
    rows: list[Row] = field(default_factory=list)
    raw: dict = field(default_factory=dict)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    import torch

    if not args.cpu_smoke and not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        return 2
    plan = CPU_SMOKE if args.cpu_smoke else GPU
    out = Path(args.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    check = Check(plan, out, _child_env(plan), args.reference)
    started, tic = datetime.now(timezone.utc), time.perf_counter()
    for size in plan.sizes:
        _guard(check, f"benchmark {size.image_size} px, batch {size.batch_size}", check_benchmark, size)
    _guard(check, "CUDA tests", check_cuda_tests)
    _guard(check, "study", check_study)
    seconds = time.perf_counter() - tic
    status = 1 if any(row.failed for row in check.rows) else 0
    conditions = _conditions(plan, started, seconds, status)
    table = render_table(check.rows)
    title = _title(conditions)
    (out / "gpu_check.md").write_text(f"{title}\n\n{table}\n")
    report = {"conditions": conditions, "table": [asdict(r) for r in check.rows], **check.raw}
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"{title}\n\n{table}")
    return status


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python tools/gpu_check.py", description=__doc__.splitlines()[0])
    p.add_argument("--reference", metavar="PATH", help="a checkout of samet-akcay/skip-ganomaly: the 1.00x row")
    p.add_argument("--out", default="gpu_check", help="folder for the table, the JSON and the logs (%(default)s)")
    p.add_argument("--cpu-smoke", action="store_true", help="the same parts on the CPU at tiny sizes (for CI)")
    return p


# --- the three parts -------------------------------------------------------------------------------------------------


def check_benchmark(check: Check, part: str, size: BenchSize) -> None:
    """`python -m ssagan_core.benchmark` at one size, every model in both compute dtypes: a row per model and dtype."""
    plan = check.plan
    path = check.out / f"benchmark_{size.image_size}px.json"
    path.unlink(missing_ok=True)
    models = [f"{m} {plan.model_suffix}".strip() for m in MODELS]
    command = [
        *(sys.executable, "-m", "ssagan_core.benchmark", *models),
        *("--image-size", str(size.image_size), "--batch-size", str(size.batch_size)),
        *("--iterations", str(size.iterations), "--warmup", str(size.warmup), "--rounds", str(size.rounds)),
        *("--device", plan.device, "--compute-dtype", *COMPUTE_DTYPES, "--json", str(path), *plan.bench_args),
        *(("--reference", check.reference) if check.reference else ()),
    ]
    outcome = run_command(command, size.limit_s, check.env, check.out / "logs" / f"benchmark_{size.image_size}px.log")
    failure = outcome.failure(size.limit_s)
    if failure or not path.exists():
        check.rows.append(Row(part, "every model", f"{outcome.seconds:.0f} s", failure or "failed: no JSON written"))
        return
    result = json.loads(path.read_text())
    check.raw.setdefault("benchmark", {})[str(size.image_size)] = result
    expected = len(MODELS) * len(COMPUTE_DTYPES) + (1 if check.reference else 0)
    rounds = f"{counted(size.rounds, 'round')} of {counted(size.iterations, 'iteration')} after {size.warmup} warm-up"
    device = result["conditions"]["device"]
    complete = "ok" if len(result["rows"]) == expected else f"failed: {len(result['rows'])} rows, {expected} expected"
    check.rows.append(Row(part, "conditions", f"{rounds}; {device}; {outcome.seconds:.0f} s", complete))
    for row in result["rows"]:
        gflops = row["gflops_generator"] + row["gflops_discriminator"]
        rate = f"{row['images_per_second']:,.1f} img/s ({row['min']:,.1f}-{row['max']:,.1f})"
        model = row["model"].removesuffix(plan.model_suffix).strip()
        case = f"{model} {row['compute_dtype']}"
        check.rows.append(Row(part, case, f"{rate}, {row['ratio']:.2f}x, {gflops:.3g} GFLOP/image", "ok"))


def check_cuda_tests(check: Check, part: str) -> None:
    """`pytest -m cuda tests/test_cuda.py`: the counts, and one row per test that failed."""
    junit = check.out / "cuda_tests.xml"
    junit.unlink(missing_ok=True)
    command = [
        *(sys.executable, "-m", "pytest", "-m", "cuda", "tests/test_cuda.py", "-q", "-p", "no:cacheprovider"),
        f"--basetemp={check.out / 'pytest-tmp'}",
        f"--junitxml={junit}",
    ]
    limit = check.plan.tests_limit_s
    outcome = run_command(command, limit, check.env, check.out / "logs" / "cuda_tests.log")
    if not junit.exists():
        check.rows.append(Row(part, "tests/test_cuda.py", "", outcome.failure(limit) or "failed: no JUnit report"))
        return
    counts, failures = read_junit(junit)
    check.raw["tests"] = {**counts, "failures": failures, "returncode": outcome.returncode}
    passed, skipped, bad = counts["passed"], counts["skipped"], counts["failed"] + counts["errors"]
    measured = (
        f"{passed} passed, {counts['failed']} failed, {counts['errors']} errors, {skipped} skipped "
        f"in {counts['seconds']:.0f} s"
    )
    if outcome.returncode is None:
        status = f"failed: timed out after {limit} s"
    elif bad:
        status = f"failed: {bad} of {counts['tests']} tests"
    elif counts["tests"] == 0:
        status = "failed: no CUDA tests collected"
    elif check.plan.hide_gpus:  # the smoke: every CUDA test must have been skipped, none run
        status = "skipped: no CUDA" if skipped == counts["tests"] else f"failed: {passed} ran without CUDA"
    else:
        status = "ok" if skipped == 0 else f"failed: {skipped} skipped on a CUDA machine"
    check.rows.append(Row(part, "pytest -m cuda tests/test_cuda.py", measured, status))
    for name, message in failures.items():
        check.rows.append(Row(part, name, message, "failed"))


def check_study(check: Check, part: str) -> None:
    """Four trials on one device through the real runner: each one's row, and whether they ran at the same time."""
    import pandas as pd

    plan = check.plan
    folder = check.out / "study"
    _clear_study_folder(folder)
    command = [sys.executable, "-m", "ablation.run", str(STUDY), "--out", str(folder), "--no-report", *plan.study_args]
    outcome = run_command(command, plan.study_limit_s, check.env, check.out / "logs" / "study.log")
    trials_file = folder / "trials.parquet"
    if not trials_file.exists():
        status = outcome.failure(plan.study_limit_s) or "failed: no trials.parquet written"
        check.rows.append(Row(part, "4 trials", f"{outcome.seconds:.0f} s", status))
        return
    trials = pd.read_parquet(trials_file)
    trials = trials[trials["started_at"].notna() & trials["finished_at"].notna()]  # a trial that never started
    overlap = time_overlap(list(trials["started_at"]), list(trials["finished_at"]))
    problems = []
    if failure := outcome.failure(plan.study_limit_s):
        problems.append(failure.removeprefix("failed: "))
    ok = int((trials["status"] == "ok").sum())
    if ok != 4 or len(trials) != 4:
        problems.append(f"{ok} of {len(trials)} trials ok, 4 expected")
    devices = sorted(set(trials["device"].astype(str)))
    if not all(d.startswith(plan.study_device) for d in devices):
        problems.append(f"devices {devices}, {plan.study_device} expected")
    if set(trials["gpus"]) != {plan.gpus_per_trial}:
        problems.append(f"gpus {sorted(set(trials['gpus']))}, {plan.gpus_per_trial:g} expected")
    if trials["node"].nunique() != 1:
        problems.append(f"{trials['node'].nunique()} nodes, 1 expected")
    if plan.require_overlap and overlap["all_at_once_s"] <= 0:
        problems.append(f"the trials never all ran at once (at most {overlap['peak']} together)")
    shares = f"gpus_per_trial {plan.gpus_per_trial:g}, {len(trials)} trials"
    together = (
        f"all {len(trials)} running at once for {overlap['all_at_once_s']:.0f} s"
        if overlap["all_at_once_s"] > 0
        else f"at most {overlap['peak']} at once"
    )
    if not plan.require_overlap:
        together += " (not required on the CPU)"
    measured = (
        f"{ok} of {len(trials)} trials ok on {', '.join(devices)}; wall {outcome.seconds:.0f} s with Ray's start, "
        f"trials from first start to last finish {overlap['span_s']:.0f} s, {together}; trial times add up to "
        f"{overlap['sum_s']:.0f} s"
    )
    check.rows.append(Row(part, shares, measured, ("failed: " + "; ".join(problems)) if problems else "ok"))
    per_trial = []
    for row, seconds in zip(trials.to_dict("records"), overlap["durations_s"], strict=True):
        auc = f"auc {row['auc']:.3f}" if pd.notna(row["auc"]) else "auc -"
        figures = (
            f"{seconds:.0f} s (training {row['train_seconds']:.1f} s, {row['images_per_second']:,.0f} img/s), "
            f"{auc}, gpus {row['gpus']:g}, {row['device']}, node {row['node']}"
        )
        status = "ok" if row["status"] == "ok" else f"failed: {row.get('error') or row['status']}"
        check.rows.append(Row(f"{part} trial", row["trial_key"], figures, status))
        per_trial.append({k: row.get(k) for k in ("trial_key", "status", "device", "gpus", "node", "auc")})
        per_trial[-1].update(
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            seconds=seconds,
            train_seconds=row["train_seconds"],
            images_per_second=row["images_per_second"],
        )
    check.raw["study"] = {"wall_seconds": outcome.seconds, "returncode": outcome.returncode, **overlap}
    check.raw["study"]["trials"] = per_trial


# --- helpers ---------------------------------------------------------------------------------------------------------


def _guard(check: Check, part: str, function, *args) -> None:
    """Run one part; an unexpected error becomes its failed row, and the check goes on."""
    try:
        function(check, part, *args)
    except Exception as e:
        check.rows.append(Row(part, "", "", f"failed: {type(e).__name__}: {last_line(str(e))}"))


def _clear_study_folder(folder: Path) -> None:
    """Remove an earlier check's study folder (the runner refuses one holding results); refuse anything else."""
    if not folder.exists():
        return
    written = folder / "study.yaml"
    if written.exists() and written.read_text().startswith("name: gpu_check\n"):
        shutil.rmtree(folder)
    elif any(folder.iterdir()):
        raise FileExistsError(f"{folder} is in the way (not an earlier gpu_check study)")


def _child_env(plan: Plan) -> dict[str, str]:
    """The parts' environment: a fresh local Ray instance (never a cluster named by $RAY_ADDRESS), deterministic
    cuBLAS from a process's first matmul, and in the smoke no GPU at all."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("RAY_ADDRESS", None)
    env.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if plan.hide_gpus:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def _conditions(plan: Plan, started: datetime, seconds: float, status: int) -> dict:
    import torch

    from ablation.results.rows import code_version

    gpu = torch.cuda.get_device_name(0) if plan.mode == "gpu" else None
    return {
        "mode": plan.mode,
        "started": started.isoformat(timespec="seconds"),
        "seconds": seconds,
        "exit_status": status,
        "gpu": gpu,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "code_version": code_version(),
        "limit_seconds": plan.limit_s(),
    }


def _title(c: dict) -> str:
    where = f"{c['gpu']}, CUDA {c['cuda']}" if c["gpu"] else "CPU smoke (no GPU used)"
    minutes, seconds = divmod(round(c["seconds"]), 60)
    return (
        f"GPU check {c['started']}: {where}, torch {c['torch']}, {c['cpus']} CPUs, code {c['code_version']}; "
        f"{minutes} min {seconds:02d} s (limit {c['limit_seconds']} s); exit status {c['exit_status']}"
    )


if __name__ == "__main__":
    sys.exit(main())
