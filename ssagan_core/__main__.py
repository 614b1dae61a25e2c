"""`python -m ssagan_core`: train one model on categories of the embedded synthetic dataset and print its metrics.

A quick serial check of the model library (no Ray, no study file); studies run through `python -m ablation.run`.
"""

from __future__ import annotations

import argparse
import sys
import time

from .config import MODELS, SCORE_NORMALIZE, ModelConfig, TrainConfig
from .data.synthetic import SYNTHETIC_CATEGORIES, make_synthetic_category
from .training import train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ssagan_core", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ssagan", choices=MODELS)
    parser.add_argument("--categories", default="all", help="comma-separated, or 'all' (%(default)s)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--base-channels", type=int, default=64, help="first stage width (%(default)s); x8 at most")
    parser.add_argument("--ndf", type=int, default=64)
    parser.add_argument("--score-normalize", default="none", choices=SCORE_NORMALIZE, help="(%(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)

    categories = SYNTHETIC_CATEGORIES if args.categories == "all" else tuple(args.categories.split(","))
    try:
        model_cfg = ModelConfig(
            model=args.model,
            image_size=args.image_size,
            base_channels=args.base_channels,
            max_channels=8 * args.base_channels,  # 64 -> 512, as the paper's widths
            ndf=args.ndf,
            score_normalize=args.score_normalize,
        )
        train_cfg = TrainConfig(
            iterations=args.iterations, batch_size=args.batch_size, lr=args.lr, num_threads=args.threads
        )
        unknown = sorted(set(categories) - set(SYNTHETIC_CATEGORIES))
        if unknown:
            raise ValueError(f"categories: {', '.join(unknown)} not among {', '.join(SYNTHETIC_CATEGORIES)}")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    print(f"{'category':<14} {'auc':>6} {'val_auc':>8} {'f1':>6} {'train s':>8} {'img/s':>7}")
    total = time.perf_counter()
    for category in categories:
        data = make_synthetic_category(category, args.image_size, seed=args.seed)
        m = train(model_cfg, train_cfg, data, seed=args.seed).metrics
        print(
            f"{category:<14} {m['auc']:>6.3f} {m['val_auc']:>8.3f} {m['f1']:>6.3f} "
            f"{m['train_seconds']:>8.1f} {m['images_per_second']:>7.1f}",
            flush=True,
        )
    print(f"total wall time {time.perf_counter() - total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
