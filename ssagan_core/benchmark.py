"""`python -m ssagan_core.benchmark`: training images per second of several models, measured in one run.

Each model trains through the real entry point (`train`, the same step a study runs) on the embedded dataset; the
first `--warmup` iterations are excluded from the rate, and the models take turns for `--rounds` rounds, so a
background load or thermal drift affects them alike and the ratios are fair. Prints one row per model with the median
rate, its range over the rounds, and the ratio to the first model.

    python -m ssagan_core.benchmark --image-size 64 --batch-size 32 ssagan skip_ganomaly "ssagan attention=false"
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import statistics
import sys

from .config import ModelConfig, TrainConfig
from .data.synthetic import make_synthetic_category
from .training import train


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
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations first (%(default)s)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    try:
        configs = [parse_model(spec, args.image_size) for spec in args.models]
        for name in ("iterations", "warmup", "rounds"):
            if getattr(args, name) < 1:
                raise ValueError(f"--{name}: must be >= 1, got {getattr(args, name)}")
        train_cfg = TrainConfig(
            iterations=args.warmup + args.iterations,
            batch_size=args.batch_size,
            log_every=1,
            num_threads=args.threads,
            device=args.device,
            score_batch_size=args.batch_size,
        )
        data = make_synthetic_category(
            "nut", args.image_size, n_train=args.batch_size, n_test_good=1, n_test_defective=1, val_fraction=0.05
        )
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    rates: list[list[float]] = [[] for _ in configs]
    for _ in range(args.rounds):
        for i, cfg in enumerate(configs):
            history = train(cfg, train_cfg, data, seed=0).history
            rates[i].append(images_per_second(history, args.warmup, args.batch_size))

    print(f"{args.image_size} px, batch {args.batch_size}, {args.rounds} rounds of {args.iterations} iterations")
    width = max(len(spec) for spec in ["model", *args.models])
    print(f"{'model':<{width}} {'images/s':>9} {'range':>15} {'ratio':>6}")
    reference = statistics.median(rates[0])
    for spec, r in zip(args.models, rates, strict=True):
        median = statistics.median(r)
        print(f"{spec:<{width}} {median:>9.2f} {min(r):>7.2f}-{max(r):<7.2f} {median / reference:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
