"""`--dry-run`'s cost estimate: each variant trained for a few iterations on this machine (the probe), its counted
FLOPs per image, and the study's wall time at its concurrency, so a user knows what a launch costs before it starts.

The probe is the real entry point (`ssagan_core.train`) with the trial's own settings, device and threads, on the
trial's own category, cut to `PROBE_WARMUP + PROBE_ITERATIONS` iterations. A trial's estimate is its measured seconds
per iteration times its iterations, plus what the probe spent outside the training loop (setting up, scoring the
validation and test images, metrics, gallery), plus one validation scoring per `eval_every` point. The study's wall
time lays the trials out in their order on `concurrency` slots (as Tune starts them) and adds the harness's own
time: starting Ray and the experiment, per trial, and the report at the end (constants measured on this project's
2-core machine; docs/running.md).

`longest_first` is the order the Ray runner starts a round's trials in, and the estimate lays them out in it: the
longest first by counted work (the longest-processing-time rule), so that short trials fill the slots at the end
instead of one long trial running alone while the other slots idle.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
import os
import statistics
import time
from dataclasses import dataclass

from ssagan_core.config import ModelConfig
from ssagan_core.cost import forward_flops
from ssagan_core.data import CategoryData

from ..study.design import TrialSpec
from ..study.schema import Resources

PROBE_WARMUP, PROBE_ITERATIONS = 2, 6  # untimed, then timed iterations of each variant's probe
# The harness's time outside the trials, measured on the attention study here (docs/running.md, "Cost estimate").
START_SECONDS = 8.0  # the command to the first trial: imports, ray.init, the data into the object store, Tune
PER_TRIAL_SECONDS = 1.0  # per trial: Tune's scheduling, the worker's start, the checkpoint carrying the row, the ledger
REPORT_SECONDS = 12.0  # the report: analysis, figures, Markdown
STEP_RULE = "3 x G + 6 x D"  # a training image's FLOPs from the forward counts (VariantCost.train_gflops)


@dataclass(frozen=True)
class VariantCost:
    variant: str
    trials: int
    seconds_per_iteration: float  # the probe's median over its timed iterations
    other_seconds: float  # the probe's time outside the training loop: set-up, scoring, metrics, gallery
    trial_seconds: float  # one trial's estimate at the study's iterations and eval points
    gflops_generator: float  # forward, per image
    gflops_discriminator: float

    @property
    def train_gflops(self) -> float:
        """FLOPs of one training image's step, from the forward counts: the generator's forward and backward (3x its
        forward), the discriminator on x and G(x) with backward passes for both losses (about 6x its forward)."""
        return 3 * self.gflops_generator + 6 * self.gflops_discriminator


@dataclass(frozen=True)
class Estimate:
    variants: list[VariantCost]
    concurrency: int
    trial_seconds: float  # the sum over trials
    wall_seconds: float  # start + the trials laid out on `concurrency` slots + per-trial overhead + report
    probe_seconds: float  # what the probe itself took

    def worst_case_seconds(self, trials: int) -> float:
        """The wall time of `trials` trials of the same mix (adaptive seeds' worst case)."""
        mean = self.trial_seconds / max(1, sum(v.trials for v in self.variants))
        return _wall([mean] * trials, self.concurrency)


def concurrency(resources: Resources, cpus: float | None = None, gpus: float | None = None) -> int:
    """How many trials run at once on this machine: the study's `max_concurrent`, capped by what fits."""
    fits = [(cpus or os.cpu_count() or 1) / resources.cpus_per_trial]
    if resources.gpus_per_trial:
        fits.append((gpus or 0) / resources.gpus_per_trial)
    capacity = max(1, math.floor(min(fits) + 1e-9))
    return min(resources.max_concurrent or capacity, capacity)


def longest_first(specs: list[TrialSpec], data: dict[str, CategoryData]) -> list[TrialSpec]:
    """`specs` by counted work, the most first (a stable sort: equal trials keep their order)."""
    work = {s.key: trial_flops(s, counted_forward(s.model), data[s.category]) for s in specs}
    return sorted(specs, key=lambda s: -work[s.key])


_FORWARD: dict[ModelConfig, dict[str, float]] = {}


def counted_forward(model: ModelConfig) -> dict[str, float]:
    """`forward_flops` of a model config, counted once per process (the first count in a process also pays for torch's
    FLOP counter importing its compiler, about 1.5 s here)."""
    if model not in _FORWARD:
        _FORWARD[model] = forward_flops(model)
    return _FORWARD[model]


def trial_flops(spec: TrialSpec, forward: dict[str, float], data: CategoryData) -> float:
    """A trial's counted work: its training images' steps (`STEP_RULE`), the validation images scored at each
    `eval_every` point and at the end, and the test images (a forward of G and D each)."""
    cfg = spec.train
    step = 3 * forward["generator"] + 6 * forward["discriminator"]
    evals = (cfg.iterations - 1) // cfg.eval_every if cfg.eval_every else 0
    scored = (evals + 1) * len(data.val) + len(data.test)
    return cfg.iterations * cfg.batch_size * step + scored * (forward["generator"] + forward["discriminator"])


def estimate(specs: list[TrialSpec], data: dict[str, CategoryData], device: str, threads: int, slots: int) -> Estimate:
    """Probe each variant of `specs` once (its first trial's settings and category) and estimate every trial, laid
    out on the slots in the runner's order (`longest_first`)."""
    tic = time.perf_counter()
    specs = longest_first(specs, data)
    first: dict[str, TrialSpec] = {}
    for spec in specs:
        first.setdefault(spec.variant, spec)
    probes = {variant: _probe(spec, data[spec.category], device, threads) for variant, spec in first.items()}
    per_trial = [_trial_seconds(spec, *probes[spec.variant], data[spec.category]) for spec in specs]
    costs = []
    for variant, spec in first.items():
        flops = forward_flops(spec.model)
        seconds_per_iteration, other, _ = probes[variant]
        costs.append(
            VariantCost(
                variant,
                sum(s.variant == variant for s in specs),
                seconds_per_iteration,
                other,
                _trial_seconds(spec, *probes[variant], data[spec.category]),
                flops["generator"] / 1e9,
                flops["discriminator"] / 1e9,
            )
        )
    return Estimate(costs, slots, sum(per_trial), _wall(per_trial, slots), time.perf_counter() - tic)


def _probe(spec: TrialSpec, data: CategoryData, device: str, threads: int) -> tuple[float, float, float]:
    """(seconds per iteration, seconds outside the loop, seconds scoring) of a short run of `spec`'s settings."""
    from ssagan_core.training import train  # here, not at the top: a study's driver only orders (scikit-learn etc.)

    iterations = PROBE_WARMUP + PROBE_ITERATIONS
    cfg = dataclasses.replace(
        spec.train, iterations=iterations, log_every=1, eval_every=0, device=device, num_threads=threads
    )
    tic = time.perf_counter()
    result = train(spec.model, cfg, data, spec.seed)
    wall = time.perf_counter() - tic
    history = result.history
    steps = [b["seconds"] - a["seconds"] for a, b in itertools.pairwise(history) if a["iteration"] >= PROBE_WARMUP]
    seconds_per_iteration = statistics.median(steps) if steps else history[-1]["seconds"] / iterations
    return seconds_per_iteration, max(0.0, wall - result.metrics["train_seconds"]), result.metrics["score_seconds"]


def _trial_seconds(
    spec: TrialSpec, seconds_per_iteration: float, other: float, scoring: float, data: CategoryData
) -> float:
    """One trial: its iterations at the probe's rate, the probe's time outside the loop, and a validation scoring
    (the validation images' share of the probe's scoring time) at each `eval_every` point before the end."""
    cfg = spec.train
    evals = (cfg.iterations - 1) // cfg.eval_every if cfg.eval_every else 0
    val_share = len(data.val) / max(1, len(data.val) + len(data.test))
    return cfg.iterations * seconds_per_iteration + other + evals * val_share * scoring


def _wall(trial_seconds: list[float], slots: int) -> float:
    """Trials started in order on `slots` workers, each the moment one is free, plus the harness's own time."""
    free = [0.0] * max(1, slots)
    for seconds in trial_seconds:
        heapq.heappush(free, heapq.heappop(free) + seconds + PER_TRIAL_SECONDS)
    return START_SECONDS + max(free) + REPORT_SECONDS


def format_seconds(seconds: float) -> str:
    """`42 s`, `5 min 56 s`, `2 h 05 min`."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
