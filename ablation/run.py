"""`python -m ablation.run STUDY.yaml`: run a study as Ray Tune trials and write its results and report.

Exit status: 0 every trial succeeded; 1 some trials failed (their rows say why; results and report are written);
2 the study could not start (bad study file or options, bad dataset, unreachable cluster), with a one-line message;
130 interrupted (finished trials are kept; `--resume` continues).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path

import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ssagan_core.datasets import DatasetError, load_category, resolve_categories

from .design import trial_specs
from .results import FAILED, OK, TRIALS_FILE, ResultStore, code_version
from .study import Study, StudyError, load_study

EXIT_OK, EXIT_FAILED, EXIT_CANNOT_START, EXIT_INTERRUPTED = 0, 1, 2, 130
STUDY_COPY = "study.yaml"


class StartError(Exception):
    """The study cannot start; one line for the user."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console(stderr=True)
    try:
        return _run(args, console)
    except (StudyError, DatasetError, StartError) as e:
        console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        return EXIT_CANNOT_START
    except KeyboardInterrupt:
        console.print("interrupted: finished trials are saved; continue with --resume")
        return EXIT_INTERRUPTED


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ablation.run", description="Run an ablation study file.")
    p.add_argument("study", help="the study file (YAML), e.g. studies/attention.yaml")
    p.add_argument("--out", help="output folder (default: reports/<study name>)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a study key; VALUE is read as YAML (repeatable)",
    )
    p.add_argument("--resume", action="store_true", help="continue a study whose output folder holds results")
    p.add_argument("--dry-run", action="store_true", help="validate the study and data, print the trials, stop")
    p.add_argument(
        "--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray instance)"
    )
    p.add_argument(
        "--storage",
        default=None,
        help="Ray Tune storage path (default <out>/ray); on a multi-node cluster it must be shared "
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
    study = load_study(args.study, args.overrides)
    out = Path(args.out or Path("reports") / study.name)
    categories = resolve_categories(study.dataset)
    specs = trial_specs(study, categories) if study.design != "search" else []
    planned = len(specs) if specs else study.search.trials * len(categories)

    if args.dry_run:
        # Load (and cache) every category: a bad image or mask must surface now, not in a trial.
        for category in categories:
            load_category(study.dataset, category)
        _print_plan(console, study, specs, categories, out)
        return EXIT_OK

    store = ResultStore(out)
    if len(store) and not args.resume:
        raise StartError(
            f"{out / TRIALS_FILE} already holds {len(store)} results; use --resume to continue "
            f"this study or --out to write elsewhere"
        )
    if args.resume and len(store):
        recorded = set(store.trials["study"])
        if recorded != {study.name}:
            raise StartError(f"--resume: {out} holds results of study {', '.join(sorted(recorded))}, not {study.name}")

    data = {category: load_category(study.dataset, category) for category in categories}
    context = {
        "study": study.name,
        "dataset": study.dataset.kind,
        "design": study.design,
        "code_version": code_version(),
        "cpus_per_trial": study.resources.cpus_per_trial,
        "gpus_per_trial": study.resources.gpus_per_trial,
        "checkpoint_seconds": study.resources.checkpoint_seconds,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / STUDY_COPY).write_text(yaml.safe_dump(study.source, sort_keys=False))
    if _complete(study, specs, categories, store):
        status = EXIT_OK
    elif args.serial:
        if study.design == "search":
            raise StartError("--serial runs grid and loco studies; a search study needs Ray Tune (drop --serial)")
        from .serial import run_serial

        status = run_serial(
            study, [s for s in specs if s.key not in store.trial_keys(OK)], data, store, context, console
        )
    else:
        status = _run_on_ray(args, study, specs, categories, data, store, context, out, planned, console)
    if status == EXIT_INTERRUPTED:
        console.print("finished trials are saved; continue with --resume")
        return EXIT_INTERRUPTED
    if not args.no_report:
        _render_report(out, console)
    ok, failed = _count(store, OK), _count(store, FAILED)
    console.print(f"study {study.name}: {ok} trials succeeded, {failed} failed; results in {out}", highlight=False)
    return EXIT_OK if failed == 0 else EXIT_FAILED


def _run_on_ray(args, study, specs, categories, data, store, context, out, planned, console) -> int:
    ray, owns_ray = _init_ray(args)
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        if len(nodes) > 1 and args.storage is None:
            raise StartError(
                f"this Ray cluster has {len(nodes)} nodes: give --storage a path every node can "
                f"reach (an NFS mount or s3://bucket/path)"
            )
        _check_resources(study, ray.cluster_resources())
        storage = str(Path(args.storage).resolve()) if args.storage and "://" not in args.storage else args.storage
        storage = storage or str((out / "ray").resolve())
        data_refs = {category: ray.put(arrays) for category, arrays in data.items()}
        return _execute(study, specs, categories, data_refs, store, context, storage, planned, console)
    finally:
        if owns_ray:
            ray.shutdown()


def _complete(study: Study, specs, categories, store: ResultStore) -> bool:
    """Nothing left to run (a --resume of a finished study)."""
    if study.design != "search":
        return not [s for s in specs if s.key not in store.trial_keys(OK)]
    counts = store.trials["category"].value_counts() if len(store) else {}
    return all(counts.get(c, 0) >= study.search.trials for c in categories)


def _execute(study, specs, categories, data_refs, store, context, storage, planned, console) -> int:
    from .progress import StudyView
    from .tuning import run_grid, run_search

    experiment = f"round-{_next_round(Path(storage))}"
    with StudyView(study.name, planned, store, console) as view:
        if study.design != "search":
            todo = [s for s in specs if s.key not in store.trial_keys(OK)]
            if todo:
                outcomes = run_grid(study, todo, data_refs, store, context, storage, experiment, [view])
                twice = sorted(k for k, n in outcomes.items() if n > 1)
                if twice:  # GridSampler or a restore replayed a point: the ledger kept one row, but say so
                    console.print(f"warning: {len(twice)} grid points ran more than once; kept the last: {twice[:3]}")
            missing = len([s for s in specs if s.key not in store.trial_keys()])
        else:
            missing = 0
            for i, category in enumerate(categories):
                earlier = store.trials[store.trials["category"] == category] if len(store) else store.trials
                remaining = study.search.trials - len(earlier)
                if remaining > 0:
                    run_search(
                        study,
                        category,
                        len(earlier),
                        remaining,
                        data_refs,
                        store,
                        context,
                        storage,
                        f"{experiment}-{i}",
                        [view],
                        earlier,
                    )
                    done = int((store.trials["category"] == category).sum()) if len(store) else 0
                    missing += max(study.search.trials - done, 0)
    if missing:
        console.print(f"{missing} of {planned} trials did not run (the study was interrupted)")
        return EXIT_INTERRUPTED
    return EXIT_OK


def _init_ray(args):
    """(ray, whether this run started it). An already-connected Ray (e.g. a test session's) is used as is."""
    import ray

    logging.getLogger("ray").setLevel(logging.WARNING)
    logging.getLogger("ray.tune.search.optuna.optuna_search").setLevel(logging.ERROR)  # GridSampler's Study.stop note
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    # Progress reports carry val_auc only at evaluation points; the final report always has it.
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"  # the legacy engine honours verbose=0; the new one prints banners anyway
    if ray.is_initialized():
        return ray, False
    address = args.address or os.environ.get("RAY_ADDRESS")
    try:
        if address:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(
                address="local",
                num_cpus=args.num_cpus,
                num_gpus=args.num_gpus,
                include_dashboard=False,
                logging_level=logging.WARNING,
                log_to_driver=False,
            )
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"Ray cluster at {address}" if address else "a local Ray instance"
        raise StartError(f"cannot start or reach {where}: {str(e).splitlines()[0]}") from None
    return ray, True


def _check_resources(study: Study, available: dict[str, float]) -> None:
    r = study.resources
    if r.cpus_per_trial > available.get("CPU", 0):
        raise StartError(
            f"resources.cpus_per_trial: {r.cpus_per_trial} CPUs per trial, but the cluster has "
            f"{available.get('CPU', 0):g}"
        )
    if r.gpus_per_trial > available.get("GPU", 0):
        raise StartError(
            f"resources.gpus_per_trial: {r.gpus_per_trial} GPUs per trial, but the cluster has "
            f"{available.get('GPU', 0):g}"
        )


def _next_round(storage: Path) -> int:
    if "://" in str(storage) or not storage.exists():
        return 1
    rounds = [int(p.name.split("-")[1]) for p in storage.glob("round-*") if p.name.split("-")[1].isdigit()]
    return max(rounds, default=0) + 1


def _count(store: ResultStore, status: str) -> int:
    return 0 if not len(store) else int((store.trials["status"] == status).sum())


def _render_report(out: Path, console: Console) -> None:
    try:
        from .report import render_report
    except ImportError:
        return
    try:
        path = render_report(out)
        console.print(f"report: {path}", highlight=False)
    except Exception as e:  # a report problem must not hide the finished results
        console.print(f"warning: the report could not be rendered ({type(e).__name__}: {e})")


def _print_plan(console: Console, study: Study, specs, categories, out: Path) -> None:
    if specs:
        table = Table(title=f"study {study.name}: {len(specs)} trials ({study.design})")
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
    console.print(
        f"dataset {study.dataset.kind}: {', '.join(categories)} at {study.dataset.image_size} px; "
        f"seeds {list(study.seeds)}; output {out}",
        highlight=False,
    )


if __name__ == "__main__":
    sys.exit(main())
