"""Train one model on one category and score it: the algorithm box of every trial.

`train` takes the configs, the data and a seed, and returns metrics and per-image scores. It knows nothing about
Ray: an orchestrator passes a `callback` that receives `Progress` (losses, `val_auc`, a checkpoint function) at
intervals, and may pass `resume` (a checkpoint) to continue an interrupted run.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .config import ModelConfig, TrainConfig
from .data import CategoryData
from .device import deterministic_kernels, resolve_device, use_cpu_memory
from .factory import build_discriminator, build_generator, count_parameters
from .gallery import trial_gallery
from .losses import LOSSES, LossTerms
from .metrics import auc_or_nan, compute_metrics
from .pixel_metrics import trial_pixel_metrics
from .reinit import DiscriminatorReset
from .scoring import combine_parts, score_images, to_float

SYNC_FREE_RESET = False  # True: the CUDA form of the discriminator reset on every device (tests compare the two)


@dataclass
class Progress:
    """What the training loop tells its callback every `log_every` iterations (and at `eval_every`)."""

    iteration: int  # iterations done
    iterations: int  # iterations planned
    seconds: float  # training wall time so far (excluding validation scoring)
    images_per_second: float
    losses: dict[str, float]  # means over the iterations since the last report
    val_auc: float | None  # set at evaluation points
    state: Callable[[], dict]  # a checkpoint to resume from; save it before training continues


@dataclass
class TrainResult:
    metrics: dict[str, float | int | str]
    test_scores: dict[str, np.ndarray]  # "score" (+ "rec", "lat" for skip models), aligned with data.test
    val_scores: dict[str, np.ndarray]  # aligned with data.val
    history: list[dict] = field(default_factory=list)  # one entry per report: iteration, losses, val_auc
    test_maps: np.ndarray | None = None  # (N, H, W) float32 anomaly maps of data.test, where the dataset has masks
    gallery: bytes | None = None  # the PNG of `ssagan_core.gallery` (where there are maps)


def train(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data: CategoryData,
    seed: int,
    callback: Callable[[Progress], None] | None = None,
    resume: dict | None = None,
    networks: tuple[nn.Module, nn.Module] | None = None,
) -> TrainResult:
    """Train `model_cfg` on `data.train` for `train_cfg.iterations` steps, then score `data.val` and `data.test`.
    `networks`: a (generator, discriminator) pair to train instead of the factory's (the benchmark's reference
    networks); `model_cfg.model` still chooses the losses and the score."""
    # 0. `deterministic`: deterministic kernels for this call only (the process's settings come back after it).
    with deterministic_kernels(train_cfg.deterministic):
        # 1. Set up: networks initialised from the seed, optimisers, the category on the device, a resumed state.
        run = _setup(model_cfg, train_cfg, data, seed, resume, networks)

        # 2. Loop: a batch, the losses, one step of each network, a report every `log_every` (and `eval_every`).
        for it in range(run.start, train_cfg.iterations):
            x, x_in = _batch(run, it)
            terms = _step(run, x, x_in, it)
            run.meter.add({"loss_g": terms.g, "loss_d": terms.d, **terms.parts})
            done = it + 1
            evaluate = bool(train_cfg.eval_every) and done % train_cfg.eval_every == 0 and done < train_cfg.iterations
            if done % train_cfg.log_every == 0 or evaluate or done == train_cfg.iterations:
                _report(run, done, evaluate, callback)

        # 3. Score: eval mode, raw scores, nothing selected on the test set.
        tic = time.perf_counter()
        val_scores, test_scores = _score_splits(run, with_test=True)
        score_seconds = time.perf_counter() - tic

        # 4. Metrics: the threshold comes from the validation split, never from the test labels.
        _finite_scores(val_scores["score"], "validation")
        _finite_scores(test_scores["score"], "test")
        metrics = compute_metrics(
            test_scores["score"],
            data.test.labels,
            val_scores["score"],
            data.val.labels,
            train_cfg.threshold_rule,
            train_cfg.threshold_quantile,
        )
        test_maps = test_scores.pop("map", None)
        metrics.update(trial_pixel_metrics(test_maps, data.test.masks))
        gallery = None
        if test_maps is not None:
            nets = (run.model_cfg, run.generator, run.discriminator)
            gallery = trial_gallery(*nets, data.test, test_scores["score"], test_maps, seed, run.device)
        metrics.update(_run_facts(run, score_seconds))
        return TrainResult(metrics, test_scores, val_scores, run.history, test_maps, gallery)


# --- the pieces of `train`, in the order it uses them ---------------------------------------------------------------


@dataclass
class _Run:
    """Everything one training run holds: configs, networks, optimisers, data on the device, and its counters."""

    model_cfg: ModelConfig
    train_cfg: TrainConfig
    data: CategoryData
    seed: int
    device: torch.device
    memory_format: torch.memory_format
    autocast: contextlib.AbstractContextManager  # bfloat16 autocast (`compute_dtype: bf16`, CPU or CUDA), else a no-op
    generator: nn.Module
    discriminator: nn.Module
    g_step: nn.Module  # the networks as the step calls them (compiled when `compile` is on)
    d_step: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    g_params: list[nn.Parameter]
    d_params: list[nn.Parameter]
    train_images: torch.Tensor  # uint8, on the device
    val_images: torch.Tensor
    batch_size: int
    batches: _BatchOrder
    rng: torch.Generator  # per-iteration noise streams (input noise, AnoGAN's z)
    reset: DiscriminatorReset | None = None  # `reinit_d_below` (on the device on CUDA: no host sync per step)
    start: int = 0  # the iteration this call starts from (> 0 when resumed)
    resumed_seconds: float = 0.0  # training seconds before this call (when resumed)
    seconds: float = 0.0  # training seconds so far, validation excluded
    d_reinits: int = 0
    history: list[dict] = field(default_factory=list)
    meter: _LossMeter = field(default_factory=lambda: _LossMeter())

    def images_per_second(self, done: int) -> float:
        """Training throughput of this call: iterations run since `start`, over the training seconds they took."""
        if done == self.start:
            return math.nan
        return (done - self.start) * self.batch_size / max(self.seconds - self.resumed_seconds, 1e-9)

    def state(self, iteration: int) -> dict:
        """A checkpoint that `train(..., resume=...)` continues from exactly."""
        return {
            "iteration": iteration,
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "d_reinits": self.d_reinits,
            "seconds": self.seconds,
            "history": list(self.history),
        }


def _setup(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data: CategoryData,
    seed: int,
    resume: dict | None,
    networks: tuple[nn.Module, nn.Module] | None = None,
) -> _Run:
    if data.image_size != model_cfg.image_size:
        raise ValueError(f"image_size: the model expects {model_cfg.image_size} px, the data is {data.image_size} px")
    device = resolve_device(train_cfg.device)
    if device.type == "cpu":
        use_cpu_memory(train_cfg.cpu_memory)
    if train_cfg.num_threads:
        torch.set_num_threads(train_cfg.num_threads)
    memory_format = torch.channels_last if train_cfg.channels_last else torch.contiguous_format
    # Weights are initialised on the CPU from the seed, so a seed gives the same start on every device.
    torch.manual_seed(seed)
    generator, discriminator = networks or (build_generator(model_cfg), build_discriminator(model_cfg))
    generator = generator.to(device, memory_format=memory_format)
    discriminator = discriminator.to(device, memory_format=memory_format)
    betas = (train_cfg.beta1, train_cfg.beta2)
    opt_g = torch.optim.Adam(generator.parameters(), lr=train_cfg.lr, betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=train_cfg.lr, betas=betas)
    g_step, d_step = generator, discriminator
    if train_cfg.compile:
        g_step, d_step = torch.compile(generator), torch.compile(discriminator)
    # The whole category stays on the training device as uint8; batches become float there.
    train_images = torch.from_numpy(data.train.images).to(device)
    batch_size = min(train_cfg.batch_size, len(train_images))
    run = _Run(
        model_cfg=model_cfg,
        train_cfg=train_cfg,
        data=data,
        seed=seed,
        device=device,
        memory_format=memory_format,
        autocast=(
            torch.autocast(device.type, dtype=torch.bfloat16)
            if train_cfg.compute_dtype == "bf16"
            else contextlib.nullcontext()
        ),
        generator=generator,
        discriminator=discriminator,
        g_step=g_step,
        d_step=d_step,
        opt_g=opt_g,
        opt_d=opt_d,
        g_params=list(generator.parameters()),
        d_params=list(discriminator.parameters()),
        train_images=train_images,
        val_images=torch.from_numpy(data.val.images).to(device),
        batch_size=batch_size,
        batches=_BatchOrder(len(train_images), batch_size, seed),
        rng=torch.Generator(device=device),
    )
    if resume is not None:
        generator.load_state_dict(resume["generator"])
        discriminator.load_state_dict(resume["discriminator"])
        opt_g.load_state_dict(resume["opt_g"])
        opt_d.load_state_dict(resume["opt_d"])
        run.start, run.d_reinits = resume["iteration"], resume["d_reinits"]
        run.seconds = run.resumed_seconds = resume["seconds"]
        run.history = list(resume["history"])
    # After a resume: its re-init count decides the next reset's weights.
    run.reset = DiscriminatorReset(
        discriminator, train_cfg.reinit_d_below, seed, run.d_reinits, on_device=SYNC_FREE_RESET or device.type == "cuda"
    )
    generator.train()
    discriminator.train()
    run.meter.restart()
    return run


def _batch(run: _Run, it: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Iteration `it`'s batch as floats in [-1, 1], and the generator's input (the batch, plus seeded noise when
    `input_noise` is on)."""
    run.rng.manual_seed(run.seed * 1_000_003 + it)  # per-iteration streams: a resumed run draws the same noise
    x = to_float(run.train_images[run.batches.indices(it, run.device)]).contiguous(memory_format=run.memory_format)
    noise = run.train_cfg.input_noise
    x_in = x + noise * torch.randn(x.shape, device=run.device, generator=run.rng) if noise > 0 else x
    return x, x_in


def lr_factor(schedule: str, it: int, iterations: int) -> float:
    """The learning rate of iteration `it` (0-based) as a share of `lr`, under `TrainConfig.lr_schedule`. A pure
    function of the iteration, so a resumed run follows the same schedule with nothing more in its checkpoint."""
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * it / iterations))
    if schedule == "linear":  # pix2pix: n_epochs constant, then n_epochs_decay down to 0 (here half and half)
        half = iterations // 2
        return 1.0 if it < half else 1.0 - (it - half) / (iterations - half)
    return 1.0


def _step(run: _Run, x: torch.Tensor, x_in: torch.Tensor, it: int) -> LossTerms:
    """One update of each network from one shared graph (losses.py), then the official codes' discriminator reset."""
    with run.autocast:
        terms = LOSSES[run.model_cfg.model](run.model_cfg, run.g_step, run.d_step, x, x_in, run.rng)
    run.opt_g.zero_grad(set_to_none=True)
    run.opt_d.zero_grad(set_to_none=True)
    terms.g.backward(inputs=run.g_params, retain_graph=True)  # G's gradient only: D is not trained on it
    terms.d.backward(inputs=run.d_params)  # D's gradient only: its fake term does not reach G
    if run.train_cfg.lr_schedule != "constant":
        lr = run.train_cfg.lr * lr_factor(run.train_cfg.lr_schedule, it, run.train_cfg.iterations)
        for group in (*run.opt_g.param_groups, *run.opt_d.param_groups):
            group["lr"] = lr
    run.opt_g.step()
    run.opt_d.step()
    run.reset.after_step(terms.d)  # both official codes restart a discriminator that has won outright
    return terms


def _finite_scores(scores: np.ndarray, split: str) -> None:
    """A NaN or infinite anomaly score (a model that diverged after its last loss check) fails the trial: an AUC
    computed around it would rank it arbitrarily."""
    bad = int(np.count_nonzero(~np.isfinite(scores)))
    if bad:
        raise FloatingPointError(f"non-finite anomaly scores for {bad} of {len(scores)} {split} images; no AUC made")


def _report(run: _Run, done: int, evaluate: bool, callback: Callable[[Progress], None] | None) -> None:
    """Close a reporting interval: mean losses (a non-finite one stops the run), `val_auc` at evaluation points, a
    history entry and the callback."""
    if run.device.type == "cuda":
        torch.cuda.synchronize(run.device)
    run.seconds += time.perf_counter() - run.meter.tic
    run.d_reinits = run.reset.settle()
    losses = run.meter.means()
    if not all(math.isfinite(v) for v in losses.values()):
        raise FloatingPointError(f"non-finite loss by iteration {done}: {_fmt(losses)}")
    val_auc = _validation_auc(run) if evaluate else None
    run.history.append({"iteration": done, "seconds": run.seconds, **losses, "val_auc": val_auc})
    if callback is not None:
        progress = Progress(
            done,
            run.train_cfg.iterations,
            run.seconds,
            run.images_per_second(done),
            losses,
            val_auc,
            lambda: run.state(done),
        )
        callback(progress)
    run.meter.restart()


def _validation_auc(run: _Run) -> float:
    auc = auc_or_nan(run.data.val.labels, _score_splits(run, with_test=False)[0]["score"])
    run.generator.train()
    run.discriminator.train()
    return auc


def _score_splits(run: _Run, with_test: bool) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
    """Eval-mode scores of the validation split (and of the test split), each mixed as `score_normalize` says with
    the validation normal images' parts as the reference scale: no test data decides how a score is made."""

    def score(images: torch.Tensor, maps: bool = False) -> dict[str, np.ndarray]:
        cfg = run.train_cfg
        return score_images(
            run.model_cfg, run.generator, run.discriminator, images, cfg.score_batch_size, cfg.channels_last, run.seed,
            maps,
        )  # fmt: skip

    val = score(run.val_images)
    maps = run.data.test.masks is not None  # anomaly maps where masks exist
    test = score(torch.from_numpy(run.data.test.images).to(run.device), maps) if with_test else None
    reference = {name: values[np.asarray(run.data.val.labels) == 0] for name, values in val.items()}
    for scores in (val, test):
        if scores is not None:
            combine_parts(run.model_cfg, scores, reference)
    return val, test


def _run_facts(run: _Run, score_seconds: float) -> dict:
    """What a result records about the run besides its metrics: sizes, cost, device and the last losses."""
    return {
        "seed": run.seed,
        "iterations": run.train_cfg.iterations,
        "batch_size": run.batch_size,
        "train_seconds": run.seconds,
        "score_seconds": score_seconds,
        "images_per_second": run.images_per_second(run.train_cfg.iterations),
        "params_generator": count_parameters(run.generator),
        "params_discriminator": count_parameters(run.discriminator),
        "d_reinits": run.d_reinits,
        "device": str(run.device),
        "n_train": len(run.data.train),
        "n_val": len(run.data.val),
        "n_val_normal": int((run.data.val.labels == 0).sum()),
        "n_test": len(run.data.test),
        **{f"final_{k}": v for k, v in run.history[-1].items() if k not in ("iteration", "seconds", "val_auc")},
    }


class _LossMeter:
    """Sums of each loss since the last report (kept on the device: no sync per iteration) and when it began."""

    def __init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0
        self.tic = time.perf_counter()

    def add(self, values: dict[str, torch.Tensor]) -> None:
        for name, value in values.items():
            self.sums[name] = self.sums.get(name, 0) + value.detach().float()
        self.count += 1

    def means(self) -> dict[str, float]:
        return {name: float(total) / self.count for name, total in self.sums.items()}


class _BatchOrder:
    """Batch indices as a pure function of (seed, iteration): a fresh permutation each epoch, last partial batch
    dropped (as the official loaders' drop_last). Being stateless, a resumed run sees the same batches."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.per_epoch = n // batch_size
        self._epoch, self._order = -1, torch.arange(n)

    def indices(self, iteration: int, device: torch.device) -> torch.Tensor:
        """The batch's indices, sliced from the epoch's order on the device (one copy to the device per epoch)."""
        epoch, step = divmod(iteration, self.per_epoch)
        if epoch != self._epoch:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            self._epoch, self._order = epoch, torch.from_numpy(order).to(device)
        return self._order[step * self.batch_size : (step + 1) * self.batch_size]


def _fmt(values: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in values.items())
