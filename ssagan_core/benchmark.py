"""`python -m ssagan_core.benchmark`: training images per second of several models, measured in one run.

Each model trains through the real entry point (`train`, the same step a study runs) on the embedded dataset; the
first `--warmup` iterations are excluded from the rate, and the models take turns for `--rounds` rounds, so a
background load or thermal drift affects them alike and the ratios are fair. Prints one row per model, compute dtype
and `--cpu-memory` mode with the median rate, its range over the rounds, the forward GFLOPs per image and the ratio to
the reference of the same memory mode: the official Skip-GANomaly networks in fp32 when `--reference` names a
checkout of them (samet-akcay/skip-ganomaly, trained by our `skip_ganomaly` step), else the mode's first row.
`--json` writes the same rows with the conditions (machine, threads, torch version).

    python -m ssagan_core.benchmark --image-size 64 --batch-size 32 --compute-dtype fp32 bf16 \
        --reference ../skip-ganomaly skip_ganomaly "ssagan attention=false" ssagan --json bench.json
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
import platform
import statistics
import sys
from pathlib import Path

import torch

from .config import COMPUTE_DTYPES, CPU_MEMORY, ModelConfig, TrainConfig
from .cost import forward_flops
from .data.synthetic import make_synthetic_category
from .device import resolve_device
from .reference import load_reference
from .training import train

REFERENCE = "official skip-ganomaly"
# Why the warm-up is 4 iterations by default: under `train.cpu_memory: keep` the process's heap grows to its
# working set over the first 2-3 iterations of a model, and those iterations are slower by the page faults of the
# new memory (getrusage's minor faults per iteration, 64 px, batch 32, fp32: the attention-off generator 120k, 242k,
# 46k, then 0-4k; the official networks 228k, 45k, 12k, then 0; 128 px alike). A warm-up of 1-2 left those
# iterations in the timed rate and understated the models that settle last (attention off at 128 px, batch 8: 0.76x
# of the official networks with 1 warm-up iteration, 0.98x with 3, 2026-12-07).


def parse_model(spec: str, image_size: int) -> ModelConfig:
    """`"ssagan attention=false conv=standard"`: a preset name, then `field=value` pairs (true / false / null, Python
    literals such as 8 or (2, 3), else a string)."""
    name, *pairs = spec.split()
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    kwargs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in fields or key in ("model", "image_size"):
            raise ValueError(f"model {spec!r}: {pair!r} is not field=value with a ModelConfig field")
        kwargs[key] = _value(value)
    return ModelConfig(model=name, image_size=image_size, **kwargs)


def _value(text: str) -> object:
    words = {"true": True, "false": False, "null": None}
    if text.lower() in words:
        return words[text.lower()]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def images_per_second(history: list[dict], warmup: int, batch_size: int) -> float:
    """Rate over the logged iterations after `warmup` (history entries are cumulative iterations and seconds)."""
    after = [h for h in history if h["iteration"] >= warmup]
    first, last = after[0], after[-1]
    return (last["iteration"] - first["iteration"]) * batch_size / (last["seconds"] - first["seconds"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ssagan_core.benchmark", description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help='preset names, optionally with fields: "ssagan attention=false"')
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=8, help="timed iterations per round (%(default)s)")
    parser.add_argument(
        "--warmup", type=int, default=4, help="untimed iterations first (%(default)s: the first 2-3 grow the heap)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compute-dtype", nargs="+", default=["fp32"], help="fp32 and/or bf16 (%(default)s)")
    parser.add_argument(
        "--cpu-memory", nargs="+", default=["keep"], help="keep and/or system (train.cpu_memory; %(default)s)"
    )
    parser.add_argument("--reference", metavar="PATH", help="a checkout of samet-akcay/skip-ganomaly: the 1.00x row")
    parser.add_argument("--json", metavar="PATH", help="also write the rows and conditions as JSON")
    args = parser.parse_args(argv)
    try:
        configs = [parse_model(spec, args.image_size) for spec in args.models]
        for name in ("iterations", "warmup", "rounds"):
            if getattr(args, name) < 1:
                raise ValueError(f"--{name}: must be >= 1, got {getattr(args, name)}")
        for dtype in args.compute_dtype:
            if dtype not in COMPUTE_DTYPES:
                raise ValueError(f"--compute-dtype: {dtype!r} is not one of {', '.join(map(repr, COMPUTE_DTYPES))}")
        for mode in args.cpu_memory:
            if mode not in CPU_MEMORY:
                raise ValueError(f"--cpu-memory: {mode!r} is not one of {', '.join(map(repr, CPU_MEMORY))}")
        if args.json and not Path(args.json).resolve().parent.is_dir():
            raise ValueError(f"--json {args.json}: its folder does not exist")
        train_cfg = TrainConfig(
            iterations=args.warmup + args.iterations,
            batch_size=args.batch_size,
            log_every=1,
            num_threads=args.threads,
            device=args.device,
            score_batch_size=args.batch_size,
        )
        # batch_size + 1 images, of which the smallest fraction holds out exactly one: every batch is the full
        # --batch-size (a fraction of 0.05 left 30 of 32 and 7 of 8, and the rates counted the missing images)
        data = make_synthetic_category(
            "nut", args.image_size, n_train=args.batch_size + 1, n_test_good=1, n_test_defective=1, val_fraction=1e-9
        )
        models = list(zip(args.models, configs, strict=True))
        runs = []  # (model, config, reference checkout, compute dtype, cpu memory); each memory mode its own 1.00x
        for mode in args.cpu_memory:
            if args.reference:
                reference_cfg = ModelConfig(model="skip_ganomaly", image_size=args.image_size)
                load_reference(args.reference, args.image_size)  # a bad checkout fails here, before anything is timed
                runs.append((REFERENCE, reference_cfg, args.reference, "fp32", mode))
            runs += [(spec, cfg, None, dtype, mode) for spec, cfg in models for dtype in args.compute_dtype]
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    rates: list[list[float]] = [[] for _ in runs]
    for _ in range(args.rounds):
        for i, (_, cfg, reference, dtype, mode) in enumerate(runs):
            networks = load_reference(reference, args.image_size) if reference else None
            step_cfg = dataclasses.replace(train_cfg, compute_dtype=dtype, cpu_memory=mode)
            history = train(cfg, step_cfg, data, seed=0, networks=networks).history
            rates[i].append(images_per_second(history, args.warmup, args.batch_size))

    # the 1.00x of each memory mode: its reference row, else its first row
    base = {}
    for (_, _, _, _, mode), r in zip(runs, rates, strict=True):
        base.setdefault(mode, statistics.median(r))
    rows = []
    for (spec, cfg, reference, dtype, mode), r in zip(runs, rates, strict=True):
        flops = forward_flops(cfg, load_reference(reference, args.image_size) if reference else None)
        rows.append(
            {
                "model": spec,
                "compute_dtype": dtype,
                "cpu_memory": mode,
                "images_per_second": statistics.median(r),
                "min": min(r),
                "max": max(r),
                "ratio": statistics.median(r) / base[mode],
                "gflops_generator": flops["generator"] / 1e9,
                "gflops_discriminator": flops["discriminator"] / 1e9,
            }
        )
    conditions = _conditions(args, train_cfg)
    print(
        f"{args.image_size} px, batch {args.batch_size}, {args.rounds} rounds of {args.iterations} iterations, "
        f"{conditions['threads']} threads, {conditions['device']}"
    )
    width = max(len(row["model"]) for row in [{"model": "model"}, *rows])
    memory = len(args.cpu_memory) > 1  # the column only when the run compares memory modes
    mem_head = f" {'memory':>6}" if memory else ""
    print(f"{'model':<{width}} {'dtype':>5}{mem_head} {'images/s':>9} {'range':>15} {'GFLOP G+D':>9} {'ratio':>6}")
    for row in rows:
        span = f"{row['min']:>7.2f}-{row['max']:<7.2f}"
        gflops = row["gflops_generator"] + row["gflops_discriminator"]
        mem = f" {row['cpu_memory']:>6}" if memory else ""
        print(
            f"{row['model']:<{width}} {row['compute_dtype']:>5}{mem} "
            f"{row['images_per_second']:>9.2f} {span} {gflops:>9.2f} {row['ratio']:>6.2f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"conditions": conditions, "rows": rows}, indent=2) + "\n")
    return 0


def _conditions(args: argparse.Namespace, train_cfg: TrainConfig) -> dict:
    """What the rates depend on besides the models: the machine, the threads, the software, the sizes."""
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    return {
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "iterations": args.iterations,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "device": f"{device.type} ({name})",
        "torch": torch.__version__,
        "reference": args.reference,
        "channels_last": train_cfg.channels_last,
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    sys.exit(main())
