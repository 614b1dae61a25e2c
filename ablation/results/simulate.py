"""What recording costs as a study grows, with no training: `python -m ablation.results.simulate --trials N --scores M`
records N synthetic trials (a trials row of about 60 columns, M per-image scores, 20 history rows each) through
`ResultStore.add` into a temporary folder and prints the time to record a trial along the way, the fold at the end,
the read back and the peak memory (the figures in docs/results.md)."""

from __future__ import annotations

import argparse
import resource
import tempfile
import time

import numpy as np
import pandas as pd

from .ledger import ResultStore, load_results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ablation.results.simulate", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--scores", type=int, default=500)
    args = parser.parse_args(argv)
    if args.trials < 20 or args.scores < 1:
        parser.error("--trials must be at least 20 and --scores at least 1")
    rng = np.random.default_rng(0)
    settings = {f"setting_{j}": 0.5 for j in range(50)}
    with tempfile.TemporaryDirectory() as out:
        store, took = ResultStore(out), []
        for i in range(args.trials):
            key = f"v|seed={i}|nut"
            row = {"study": "sim", "trial_key": key, "variant": "v", "seed": i, "category": "nut", "status": "ok",
                   "auc": 0.7, **settings}  # fmt: skip
            scores = pd.DataFrame({"trial_key": key, "split": "test", "path": [f"{k}.png" for k in range(args.scores)],
                                   "label": np.arange(args.scores) % 2, "score": rng.random(args.scores)})  # fmt: skip
            history = pd.DataFrame({"trial_key": key, "iteration": np.arange(20), "loss_g": rng.random(20)})
            start = time.perf_counter()
            store.add(row, scores, history)
            took.append(time.perf_counter() - start)
        for at in sorted({min(100, args.trials), args.trials // 2, args.trials}):
            if at >= 20:
                print(f"record trial {at}: {1000 * np.median(took[at - 20 : at]):.1f} ms (median of the 20 before)")
        start = time.perf_counter()
        store.finish()
        print(f"fold at the end: {time.perf_counter() - start:.1f} s; all recording: {sum(took):.0f} s")
        start = time.perf_counter()
        results = load_results(out)
        print(f"read back: {time.perf_counter() - start:.1f} s, {len(results.trials)} trials, "
              f"{len(results.scores)} score rows")  # fmt: skip
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
