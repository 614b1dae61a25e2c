"""`python -m ablation.run STUDY.yaml`: run a study as Ray Tune trials (or `--serial`) and write its results and report.

Exit status: 0 every trial succeeded; 1 some trials failed (their rows say why; results and report are written);
2 the study could not start (bad study file or options, bad dataset, unreachable cluster), with a one-line message;
74 the output folder stopped taking writes (disk full, read-only): the run stops, what was recorded stays readable;
130 interrupted (finished trials are kept; `--resume` continues).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ssagan_core.data import CategoryData, DatasetError, load_category, resolve_categories

from ..results.ledger import LedgerWriteError, ResultStore
from ..results.rows import FAILED, OK
from ..study.design import TrialSpec, trial_specs
from ..study.load import StudyDeprecation, StudyError, check_budget, data_config, load_study
from ..study.schema import Study
from .context import RunContext, StartError
from .lock import hold_output
from .output import open_output
from .progress import StudyView

EXIT_OK, EXIT_FAILED, EXIT_CANNOT_START, EXIT_CANNOT_WRITE, EXIT_INTERRUPTED = 0, 1, 2, 74, 130


class UsageError(Exception):
    """A bad command line (unknown option, missing or malformed value): one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line (`error: ...`), not the usage text and an error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (python -m ablation.run --help)")


def main(argv: list[str] | None = None) -> int:
    console = Console(stderr=True)
    try:
        args = parser().parse_args(argv)
    except UsageError as e:
        _error(console, str(e))
        return EXIT_CANNOT_START
    try:
        return _run(args, console)
    except (StudyError, DatasetError, StartError) as e:
        _error(console, str(e))
        return EXIT_CANNOT_START
    except LedgerWriteError as e:  # disk full or read-only output: stop, keeping what is written
        _error(console, str(e))
        return EXIT_CANNOT_WRITE
    except KeyboardInterrupt:
        _say(console, "interrupted: finished trials are saved; continue with --resume")
        return EXIT_INTERRUPTED


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m ablation.run", description="Run an ablation study file.")
    p.add_argument("study", help="the study file (YAML), e.g. studies/attention.yaml")
    p.add_argument("--out", help="output folder (default: reports/NAME, NAME the study's name)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a study key; VALUE is read as YAML (repeatable)",
    )
    p.add_argument("--resume", action="store_true", help="continue a study whose output folder holds results")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="validate the study and data, print the trials and a cost estimate (a short probe of each variant), stop",
    )
    p.add_argument("--no-estimate", action="store_true", help="--dry-run without the probe and cost estimate")
    p.add_argument(
        "--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray instance)"
    )
    p.add_argument(
        "--storage",
        default=None,
        help="Ray Tune storage path (default: OUT/ray); on a multi-node cluster it must be shared "
        "by every node (NFS path or s3://...)",
    )
    p.add_argument("--num-cpus", type=int, default=None, help="local Ray instance only: CPUs to use")
    p.add_argument("--num-gpus", type=int, default=None, help="local Ray instance only: GPUs to use")
    p.add_argument("--no-report", action="store_true", help="do not render the report at the end")
    p.add_argument(
        "--serial",
        action="store_true",
        help="run the trials one by one in this process, without Ray (for debugging and profiling)",
    )
    return p


def _run(args: argparse.Namespace, console: Console) -> int:
    study = _load(args, console)
    out = Path(args.out or Path("reports") / study.name)
    dataset = data_config(study)
    categories = resolve_categories(dataset)
    check_budget(study, len(categories))
    specs = trial_specs(study, categories) if study.design != "search" else []
    planned = study.planned_trials(len(categories))
    # Load (and cache) every category: a bad image or mask must surface now, before anything is written.
    data = {category: load_category(dataset, category) for category in categories}
    if args.dry_run:
        _print_plan(console, study, specs, categories, out)
        if not args.no_estimate:
            _print_estimate(console, study, specs, data, args)
        return EXIT_OK
    if args.serial and study.design == "search":
        raise StartError("--serial runs grid and loco studies; a search study needs Ray Tune (drop --serial)")
    open_output(out, study, args.resume)  # refuse a folder in the way before touching it (again under the lock)
    with hold_output(out), _ray_for(args, study) as release_ray:  # one writer per folder; Ray up and checked
        store, changes = open_output(out, study, args.resume)
        for change in changes:
            _say(console, f"resume: the study file changed since the last run, continuing: {change}")
        store.save_study(study)
        return _run_trials(args, study, store, categories, specs, planned, data, console, release_ray)


@contextlib.contextmanager
def _ray_for(args: argparse.Namespace, study: Study) -> Iterator[Callable[[], None]]:
    """A Ray session for the run (none with --serial), the cluster checked against the study's resources; yields
    what to call once the trials are over (Ray then shuts down while the ledger folds and the report renders)."""
    if args.serial:
        yield lambda: None
        return
    from . import session  # Ray is imported only when a study runs on it

    with session.ray_session(args.address, args.num_cpus, args.num_gpus) as ray_held:
        session.check_cluster(study.resources, args.storage)
        yield ray_held.release


def _run_trials(
    args: argparse.Namespace,
    study: Study,
    store: ResultStore,
    categories: tuple[str, ...],
    specs: list[TrialSpec],
    planned: int,
    data: dict[str, CategoryData],
    console: Console,
    release_ray: Callable[[], None],
) -> int:
    """Run what is left of the study, fold the ledger, render the report."""
    out = store.out
    if study.adaptive_seeds:
        rounds = _adaptive_rounds(study, categories, store, console)
    else:
        todo = [s for s in specs if s.key not in store.trial_keys(OK)]
        rounds = iter([todo] if todo else [])
    if study.design == "search":
        done = store.trials["category"].value_counts() if len(store) else {}
        complete = all(done.get(c, 0) >= study.search.trials for c in categories)
    else:
        complete = False  # the rounds say what is left (none when the study is complete)
    if complete:
        status = EXIT_OK
    elif args.serial:
        from .serial import run_serial

        with StudyView(study.name, planned, store, console, at_most=study.adaptive_seeds is not None) as view:
            for todo in rounds:
                run_serial(todo, data, store, RunContext.of(study), view)
        status = EXIT_OK
    else:
        status = _run_on_ray(args, study, rounds, data, store, planned, console)
    release_ray()  # the trials are over: Ray shuts down beside what follows
    store.finish()  # the scores and history parts folded into one file each

    if status == EXIT_INTERRUPTED:
        _say(console, "finished trials are saved; continue with --resume")
        return EXIT_INTERRUPTED
    if not args.no_report:
        _render_report(out, console)
    ok, failed = store.count(OK), store.count(FAILED)
    _say(console, f"study {study.name}: {ok} trials succeeded, {failed} failed; results in {out}")
    return EXIT_OK if failed == 0 else EXIT_FAILED


def _adaptive_rounds(
    study: Study, categories: tuple[str, ...], store: ResultStore, console: Console
) -> Iterator[list[TrialSpec]]:
    """Adaptive seeds: one round after another, each chosen from the verdicts in the ledger (`adaptive`), until
    every effect is decided or a budget is spent; each round's reason and the stop are printed."""
    from .adaptive import next_round

    attempted: set[str] = set()
    started, hours = time.monotonic(), study.adaptive_seeds.max_hours
    for number in itertools.count(1):
        plan = next_round(study, categories, store.trials, attempted)
        if not plan.specs:
            _say(console, f"adaptive seeds: stopped: {plan.why}")
            return
        if hours is not None and number > 1 and time.monotonic() - started > hours * 3600:
            _say(console, f"adaptive seeds: stopped: adaptive_seeds.max_hours ({hours:g} h) spent; --resume continues")
            return
        _say(console, f"adaptive seeds: round {number}: {plan.why}")
        attempted.update(s.key for s in plan.specs)
        yield plan.specs


def _load(args: argparse.Namespace, console: Console) -> Study:
    """The validated study; a renamed key is a one-line warning, not an error."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", StudyDeprecation)
        study = load_study(args.study, args.overrides)
    for warning in caught:
        if issubclass(warning.category, StudyDeprecation):
            console.print(f"[yellow]warning:[/] {escape(str(warning.message))}", highlight=False, soft_wrap=True)
    return study


def _run_on_ray(
    args: argparse.Namespace,
    study: Study,
    rounds: Iterator[list[TrialSpec]],
    data: dict[str, CategoryData],
    store: ResultStore,
    planned: int,
    console: Console,
) -> int:
    """Run what is left of the study on Ray (a grid's `rounds` of trials, each its own Tune experiment; a search's
    remaining trials per category of `data`); EXIT_INTERRUPTED if some trial of a round has no row at the end."""
    from . import driver  # Ray is imported only when a study runs on it

    out = store.out
    storage = str(Path(args.storage).resolve()) if args.storage and "://" not in args.storage else args.storage
    storage = storage or str((out / "ray").resolve())
    missing = 0
    with StudyView(study.name, planned, store, console, at_most=study.adaptive_seeds is not None) as view:
        if study.design != "search":
            for todo in rounds:  # each round its own Tune experiment (round-1, round-2, ... under storage)
                context = RunContext.of(study, storage, driver.next_round(storage))
                outcomes = driver.run_grid(todo, data, store, context, view)
                twice = sorted(k for k, n in outcomes.items() if n > 1)
                if twice:  # GridSampler or a restore replayed a point: the ledger kept one row, but say so
                    kept = f"kept the last: {twice[:3]}"
                    _say(console, f"warning: {len(twice)} grid points ran more than once; {kept}")
                missing = len([s for s in todo if s.key not in store.trial_keys()])
                if missing:
                    break
        else:
            context = RunContext.of(study, storage, driver.next_round(storage))
            for category in data:
                driver.run_search(study, category, data, store, context, view)
                done = int((store.trials["category"] == category).sum()) if len(store) else 0
                missing += max(study.search.trials - done, 0)
    if missing:
        _say(console, f"{missing} of {planned} trials did not run (the study was interrupted)")
        return EXIT_INTERRUPTED
    return EXIT_OK


def _render_report(out: Path, console: Console) -> None:
    from ..report.cli import render_report

    try:
        path = render_report(out)
        _say(console, f"report: {path}")
    except Exception as e:  # a report problem must not hide the finished results
        _say(console, f"warning: the report could not be rendered ({type(e).__name__}: {e})")


def _print_plan(console: Console, study: Study, specs: list[TrialSpec], categories, out: Path) -> None:
    r = study.adaptive_seeds
    if r:  # adaptive seeds: the first round is known; what follows depends on the verdicts
        first = set(study.first_seeds)
        specs = [s for s in specs if s.seed in first]
    if specs:
        what = f"{study.design}, the first round of adaptive seeds" if r else study.design
        table = Table(title=f"study {study.name}: {len(specs)} trials ({what})")
        for name in ("#", "trial key", "variant", "seed", "category"):
            table.add_column(name)
        for i, s in enumerate(specs, 1):
            table.add_row(str(i), s.key, s.variant, str(s.seed), s.category)
    else:
        table = Table(title=f"study {study.name}: search, {study.search.trials} trials per category")
        for name in ("factor", "distribution"):
            table.add_column(name)
        for key, dim in study.search.space.items():
            table.add_row(key, f"{dim.kind} {list(dim.choices) if dim.choices else [dim.low, dim.high]}")
    Console().print(table)
    seeds = f"seeds {list(study.first_seeds)} first" if r else f"seeds {list(study.seeds)}"
    _say(
        console,
        f"dataset {study.dataset['kind']}: {', '.join(categories)} at {study.image_size} px; {seeds}; output {out}",
    )
    if r:
        from .adaptive import worst_case

        budget = [
            f"{key} {value:g}" for key, value in (("max_trials", r.max_trials), ("max_hours", r.max_hours)) if value
        ]
        _say(
            console,
            f"adaptive seeds: then {r.step} more at a time for the variants of undecided effects, judged at "
            f"{', '.join(map(str, r.looks()))} seeds; worst case {worst_case(study, len(categories))} trials"
            + (f" ({', '.join(budget)})" if budget else ""),
        )


def _print_estimate(
    console: Console, study: Study, specs: list[TrialSpec], data: dict[str, CategoryData], args: argparse.Namespace
) -> None:
    """The probe of each variant on this machine and the study's estimated cost (`estimate`)."""
    import torch

    from ..study.design import spec_for, variants
    from .estimate import PROBE_ITERATIONS, PROBE_WARMUP, STEP_RULE, concurrency, estimate, format_seconds

    context = RunContext.of(study)
    if context.device == "cuda" and not torch.cuda.is_available():
        _say(console, "cost estimate: not made: the study asks for GPUs (gpus_per_trial) and this machine has none")
        return
    if study.adaptive_seeds:
        first = set(study.first_seeds)
        specs = [s for s in specs if s.seed in first]
    if study.design == "search":  # the base settings stand for every sampled point (a rough figure)
        base = variants(study)[0]
        specs = [spec_for(study, base, study.seeds[0], c) for c in data for _ in range(study.search.trials)]
    gpus = args.num_gpus if args.num_gpus is not None else torch.cuda.device_count()
    slots = concurrency(study.resources, args.num_cpus, gpus)
    result = estimate(specs, data, context.device, context.threads, slots)
    table = Table(title=f"cost estimate: a {PROBE_WARMUP + PROBE_ITERATIONS}-iteration probe of each variant here")
    for name in ("variant", "trials", "s/iter", "trial", "GFLOP G", "GFLOP D", "GFLOP step"):
        table.add_column(name, justify="left" if name == "variant" else "right", no_wrap=True)
    for v in result.variants:
        table.add_row(
            v.variant, str(v.trials), f"{v.seconds_per_iteration:.3g}", format_seconds(v.trial_seconds),
            f"{v.gflops_generator:.3g}", f"{v.gflops_discriminator:.3g}", f"{v.train_gflops:.3g}",
        )  # fmt: skip
    Console(width=max(Console().width, 100)).print(table)
    _say(console, f"GFLOP: forward per image (G, D); step: per training image, {STEP_RULE}; device {context.device}")
    where = f"{slots} at a time" + (f" on {args.address}'s share of this machine" if args.address else " here")
    what = "the first round" if study.adaptive_seeds else f"{len(specs)} trials"
    line = (
        f"estimated wall time: {format_seconds(result.wall_seconds)} for {what} "
        f"({format_seconds(result.trial_seconds)} of trial work, {where}; the probe took "
        f"{format_seconds(result.probe_seconds)})"
    )
    if study.adaptive_seeds:
        from .adaptive import worst_case

        worst = worst_case(study, len(data))
        line += f"; worst case {worst} trials: {format_seconds(result.worst_case_seconds(worst))}"
    _say(console, line)


def _say(console: Console, text: str) -> None:
    """One plain line: no markup (paths and trial keys hold brackets), no wrapping (logs are read by tools too)."""
    console.print(text, highlight=False, markup=False, soft_wrap=True)


def _error(console: Console, message: str) -> None:
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


if __name__ == "__main__":
    sys.exit(main())
