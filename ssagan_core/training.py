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

from .config import ModelConfig, TrainConfig
from .data import CategoryData, to_float
from .factory import build_discriminator, build_generator, count_parameters, init_weights
from .losses import LOSSES
from .metrics import auc_or_nan, compute_metrics
from .scoring import combine_parts, score_images


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


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' was requested but CUDA is not available on this machine")
    return torch.device(name)


def train(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data: CategoryData,
    seed: int,
    callback: Callable[[Progress], None] | None = None,
    resume: dict | None = None,
) -> TrainResult:
    """Train `model_cfg` on `data.train` for `train_cfg.iterations` steps, then score `data.val` and `data.test`."""
    if data.image_size != model_cfg.image_size:
        raise ValueError(f"image_size: the model expects {model_cfg.image_size} px, the data is {data.image_size} px")
    device = resolve_device(train_cfg.device)
    if train_cfg.num_threads:
        torch.set_num_threads(train_cfg.num_threads)
    memory_format = torch.channels_last if train_cfg.channels_last else torch.contiguous_format
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if train_cfg.amp and device.type == "cuda"
        else contextlib.nullcontext()
    )

    # Weights are initialised on the CPU from the seed, so a seed gives the same start on every device.
    torch.manual_seed(seed)
    generator = build_generator(model_cfg).to(device, memory_format=memory_format)
    discriminator = build_discriminator(model_cfg).to(device, memory_format=memory_format)
    opt_g = torch.optim.Adam(generator.parameters(), lr=train_cfg.lr, betas=(train_cfg.beta1, train_cfg.beta2))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=train_cfg.lr, betas=(train_cfg.beta1, train_cfg.beta2))
    g_params, d_params = list(generator.parameters()), list(discriminator.parameters())
    start, d_reinits, elapsed, history = 0, 0, 0.0, []
    if resume is not None:
        generator.load_state_dict(resume["generator"])
        discriminator.load_state_dict(resume["discriminator"])
        opt_g.load_state_dict(resume["opt_g"])
        opt_d.load_state_dict(resume["opt_d"])
        start, d_reinits, elapsed = resume["iteration"], resume["d_reinits"], resume["seconds"]
        history = list(resume["history"])
    g_step, d_step = generator, discriminator
    if train_cfg.compile:
        g_step, d_step = torch.compile(generator), torch.compile(discriminator)
    compute_losses = LOSSES[model_cfg.model]

    # The whole category stays on the training device as uint8; batches become float there.
    train_images = torch.from_numpy(data.train.images).to(device)
    val_images = torch.from_numpy(data.val.images).to(device)
    val_labels = np.asarray(data.val.labels)
    batch_size = min(train_cfg.batch_size, len(train_images))
    batches = _BatchOrder(len(train_images), batch_size, seed)
    rng = torch.Generator(device=device)

    def state(iteration: int) -> dict:
        return {
            "iteration": iteration,
            "generator": generator.state_dict(),
            "discriminator": discriminator.state_dict(),
            "opt_g": opt_g.state_dict(),
            "opt_d": opt_d.state_dict(),
            "d_reinits": d_reinits,
            "seconds": elapsed,
            "history": list(history),
        }

    def score(images: torch.Tensor) -> dict[str, np.ndarray]:
        return score_images(
            model_cfg, generator, discriminator, images, train_cfg.score_batch_size, train_cfg.channels_last, seed
        )

    def score_val() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The validation split's scores, mixed as `score_normalize` says, and the parts of its normal images: the
        reference that scales any other split's parts the same way."""
        val = score(val_images)
        reference = {name: values[val_labels == 0] for name, values in val.items()}
        combine_parts(model_cfg, val, reference)
        return val, reference

    def validate() -> float:
        auc = auc_or_nan(data.val.labels, score_val()[0]["score"])
        generator.train()
        discriminator.train()
        return auc

    generator.train()
    discriminator.train()
    sums: dict[str, torch.Tensor] = {}
    since_report, tic = 0, time.perf_counter()
    for it in range(start, train_cfg.iterations):
        rng.manual_seed(seed * 1_000_003 + it)  # per-iteration streams: a resumed run draws the same noise
        x = to_float(train_images[batches.indices(it, device)]).contiguous(memory_format=memory_format)
        x_in = x
        if train_cfg.input_noise > 0:
            x_in = x + train_cfg.input_noise * torch.randn(x.shape, device=device, generator=rng)

        with autocast:
            terms = compute_losses(model_cfg, g_step, d_step, x, x_in, rng)
        opt_g.zero_grad(set_to_none=True)
        opt_d.zero_grad(set_to_none=True)
        terms.g.backward(inputs=g_params, retain_graph=True)  # G's gradient only: D is not trained on it
        terms.d.backward(inputs=d_params)  # D's gradient only: its fake term does not reach G
        opt_g.step()
        opt_d.step()
        # Both official codes restart a discriminator that has won outright.
        if train_cfg.reinit_d_below and terms.d.item() < train_cfg.reinit_d_below:
            init_weights(discriminator)
            d_reinits += 1

        for name, value in {"loss_g": terms.g, "loss_d": terms.d, **terms.parts}.items():
            sums[name] = sums.get(name, 0) + value.detach().float()
        since_report += 1
        done = it + 1
        evaluate = train_cfg.eval_every and done % train_cfg.eval_every == 0 and done < train_cfg.iterations
        if done % train_cfg.log_every == 0 or evaluate or done == train_cfg.iterations:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            elapsed += time.perf_counter() - tic
            losses = {name: float(total) / since_report for name, total in sums.items()}
            if not all(math.isfinite(v) for v in losses.values()):
                raise FloatingPointError(f"non-finite loss by iteration {done}: {_fmt(losses)}")
            val_auc = validate() if evaluate else None
            entry = {"iteration": done, "seconds": elapsed, **losses, "val_auc": val_auc}
            history.append(entry)
            if callback is not None:
                rate = (done - start) * batch_size / max(elapsed - (resume or {}).get("seconds", 0.0), 1e-9)
                callback(Progress(done, train_cfg.iterations, elapsed, rate, losses, val_auc, lambda d=done: state(d)))
            sums, since_report, tic = {}, 0, time.perf_counter()

    # Scoring: eval mode, no test-set statistics, nothing selected on the test set.
    tic = time.perf_counter()
    val_scores, reference = score_val()
    test_scores = score(torch.from_numpy(data.test.images).to(device))
    combine_parts(model_cfg, test_scores, reference)
    score_seconds = time.perf_counter() - tic

    metrics = compute_metrics(
        test_scores["score"],
        data.test.labels,
        val_scores["score"],
        data.val.labels,
        train_cfg.threshold_rule,
        train_cfg.threshold_quantile,
    )
    steps = train_cfg.iterations - start
    resumed_seconds = (resume or {}).get("seconds", 0.0)
    metrics.update(
        seed=seed,
        iterations=train_cfg.iterations,
        batch_size=batch_size,
        train_seconds=elapsed,
        score_seconds=score_seconds,
        images_per_second=steps * batch_size / max(elapsed - resumed_seconds, 1e-9) if steps else math.nan,
        params_generator=count_parameters(generator),
        params_discriminator=count_parameters(discriminator),
        d_reinits=d_reinits,
        device=str(device),
        n_train=len(data.train),
        n_val=len(data.val),
        n_test=len(data.test),
        **{f"final_{k}": v for k, v in history[-1].items() if k not in ("iteration", "seconds", "val_auc")},
    )
    return TrainResult(metrics, test_scores, val_scores, history)


class _BatchOrder:
    """Batch indices as a pure function of (seed, iteration): a fresh permutation each epoch, last partial batch
    dropped (as the official loaders' drop_last). Being stateless, a resumed run sees the same batches."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.per_epoch = n // batch_size
        self._epoch, self._order = -1, np.arange(n)

    def indices(self, iteration: int, device: torch.device) -> torch.Tensor:
        epoch, step = divmod(iteration, self.per_epoch)
        if epoch != self._epoch:
            self._epoch, self._order = epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n)
        chosen = self._order[step * self.batch_size : (step + 1) * self.batch_size]
        return torch.from_numpy(chosen).to(device, non_blocking=True)


def _fmt(values: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in values.items())
