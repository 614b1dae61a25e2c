"""What only a GPU can check: training on CUDA, bf16 there, the attention's memory-efficient kernel, bit-identical
`deterministic` runs, a loop that never waits for the GPU between reports, the sync-free discriminator reset, and
fractional-GPU trials sharing one device. Every test is marked `cuda` (skipped without a CUDA device: conftest);
`tools/gpu_check.py` runs them with `pytest -m cuda tests/test_cuda.py`."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from ablation.results.ledger import TRIALS_FILE
from ablation.run.cli import main
from ablation.run.context import device_label
from ssagan_core import training
from ssagan_core.blocks import SelfAttention2d
from ssagan_core.config import ModelConfig, TrainConfig
from ssagan_core.factory import build_discriminator, build_generator
from ssagan_core.presets import MODELS
from ssagan_core.reinit import DiscriminatorReset
from ssagan_core.training import train

from .helpers import TINY, random_category
from .studies import write_study

pytestmark = pytest.mark.cuda

ROOT = Path(__file__).resolve().parents[1]
# Widths at which every attention block's query/key (C/8 channels) meets the memory-efficient kernel's alignment
# (8 for bf16), as the paper's widths do; TINY's C/8 of 1-2 would send SDPA to its math path.
ALIGNED = {"base_channels": 64, "max_channels": 128, "ndf": 16, "nz": 16}
EFFICIENT = "aten::_scaled_dot_product_efficient_attention"
MATH = "aten::_scaled_dot_product_attention_math"


def _ops(prof: profile) -> set[str]:
    return {event.key for event in prof.key_averages()}


def _losses(history: list[dict]) -> list[dict]:
    """A run's history without its timings: what two runs of the same computation must share exactly."""
    return [{k: v for k, v in entry.items() if k != "seconds"} for entry in history]


def _assert_same_scores(a: training.TrainResult, b: training.TrainResult) -> None:
    assert a.test_scores.keys() == b.test_scores.keys()
    for name in a.test_scores:
        assert np.array_equal(a.test_scores[name], b.test_scores[name]), name
    for name in a.val_scores:
        assert np.array_equal(a.val_scores[name], b.val_scores[name]), name


@pytest.mark.parametrize("preset", MODELS)
def test_every_preset_trains_and_scores_on_the_gpu(preset) -> None:
    model = ModelConfig(model=preset, image_size=32, anogan_steps=3, **TINY)
    cfg = TrainConfig(iterations=2, batch_size=4, log_every=1, score_batch_size=8, device="cuda")
    data = random_category(32)
    result = train(model, cfg, data, seed=0)
    assert result.metrics["device"].startswith("cuda")
    assert device_label(result.metrics["device"]).startswith("cuda (")  # the row's device names the GPU
    assert len(result.test_scores["score"]) == len(data.test)
    for scores in (result.test_scores, result.val_scores):
        assert all(np.isfinite(values).all() for values in scores.values())
    assert [h["iteration"] for h in result.history] == [1, 2]
    assert all(np.isfinite(h["loss_g"]) and np.isfinite(h["loss_d"]) for h in result.history)


def test_bf16_on_cuda_trains_in_bfloat16_with_the_efficient_kernel_and_scores_in_float32() -> None:
    model = ModelConfig(model="ssagan", image_size=32, **ALIGNED)
    torch.manual_seed(0)
    generator, discriminator = build_generator(model), build_discriminator(model)
    outputs: list[tuple[bool, torch.dtype]] = []  # (training?, dtype) of every generator output
    generator.register_forward_hook(lambda module, args, out: outputs.append((module.training, out.dtype)))
    cfg = TrainConfig(iterations=3, batch_size=4, log_every=1, device="cuda", compute_dtype="bf16")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        result = train(model, cfg, random_category(32), seed=0, networks=(generator, discriminator))
    assert {dtype for training_mode, dtype in outputs if training_mode} == {torch.bfloat16}
    assert {dtype for training_mode, dtype in outputs if not training_mode} == {torch.float32}
    ops = _ops(prof)
    assert {EFFICIENT, f"{EFFICIENT}_backward"} <= ops and MATH not in ops
    assert all(np.isfinite(values).all() for values in result.test_scores.values())
    assert all(np.isfinite(h["loss_g"]) and np.isfinite(h["loss_d"]) for h in result.history)


@pytest.mark.parametrize("kv_pool", [1, 2])
@pytest.mark.parametrize("compute_dtype", ["fp32", "bf16"])
def test_attention_on_cuda_runs_the_efficient_kernel_unpadded_and_matches_the_cpu(
    compute_dtype, kv_pool, monkeypatch
) -> None:
    """The CUDA path (C/8-wide query and key into SDPA's memory-efficient kernel, forward and backward) against the
    CPU path (query and key zero-padded to C, flash kernel) in float32: the same attention and the same gradients."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # fp32 here means fp32 in the 1x1 convs too
    torch.manual_seed(0)
    block = SelfAttention2d(64, kv_pool)
    with torch.no_grad():
        block.gamma.fill_(1.0)  # gamma starts at 0, which would hide the attention
    x = torch.randn(2, 64, 16, 16).contiguous(memory_format=torch.channels_last)  # (B, C, H, W), N = 256 tokens

    x_cpu = x.clone().requires_grad_()
    attended_cpu = block(x_cpu) - x_cpu  # gamma = 1: the attention term alone
    attended_cpu.square().sum().backward()

    gpu_block = copy.deepcopy(block).cuda()
    x_gpu = x.cuda().requires_grad_()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if compute_dtype == "bf16" else contextlib.nullcontext()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        with autocast:
            out = gpu_block(x_gpu)
        attended_gpu = out.float() - x_gpu
        attended_gpu.square().sum().backward()
        torch.cuda.synchronize()
    ops = _ops(prof)
    assert {EFFICIENT, f"{EFFICIENT}_backward"} <= ops and MATH not in ops
    (call,) = [e for e in prof.key_averages(group_by_input_shape=True) if e.key == EFFICIENT]
    query, key, value = call.input_shapes[:3]
    tokens = 16 * 16 // kv_pool**2
    assert (query, key, value) == ([2, 1, 256, 8], [2, 1, tokens, 8], [2, 1, tokens, 64])  # query and key unpadded

    tolerance = {"fp32": 1e-3, "bf16": 5e-2}[compute_dtype]  # a padding or layout bug is an O(1) error

    def relative_error(gpu: torch.Tensor, cpu: torch.Tensor) -> float:
        return float((gpu.detach().float().cpu() - cpu.detach()).norm() / cpu.detach().norm())

    assert relative_error(attended_gpu, attended_cpu) < tolerance
    for name in ("query", "key", "value"):
        gpu_grad, cpu_grad = getattr(gpu_block, name).weight.grad, getattr(block, name).weight.grad
        assert relative_error(gpu_grad, cpu_grad) < tolerance, name
    assert relative_error(x_gpu.grad, x_cpu.grad) < tolerance


@pytest.mark.parametrize("compute_dtype", ["fp32", "bf16"])
def test_deterministic_runs_on_cuda_are_bit_identical(compute_dtype) -> None:
    """Attention (its backward in the deterministic form), bilinear upsampling (its matmul backward), input noise and
    the batch order: two runs give the same losses, scores and maps to the last bit."""
    model = ModelConfig(model="ssagan", image_size=32, **ALIGNED)
    cfg = TrainConfig(
        iterations=6,
        batch_size=4,
        log_every=2,
        input_noise=0.05,
        device="cuda",
        compute_dtype=compute_dtype,
        deterministic=True,
    )
    data = random_category(32)
    first, second = (train(model, cfg, data, seed=3) for _ in range(2))
    assert _losses(first.history) == _losses(second.history)
    _assert_same_scores(first, second)
    assert first.test_maps is not None and np.array_equal(first.test_maps, second.test_maps)
    assert not torch.are_deterministic_algorithms_enabled()  # the process's setting is back


@pytest.mark.parametrize("compute_dtype", ["fp32", "bf16"])
@pytest.mark.parametrize("preset", MODELS)
def test_the_training_loop_never_waits_for_the_gpu_between_reports(preset, compute_dtype) -> None:
    """The loop body between two reports (`_batch`, `_step`, the loss meter) under torch's sync debug mode "error":
    any host sync (`.item()`, a blocking copy, `nonzero`, a synchronize) raises. The steps cross an epoch (a new batch
    order), use input noise and a cosine learning rate, and the discriminator reset fires at every step."""
    model = ModelConfig(model=preset, image_size=32, anogan_steps=3, **ALIGNED)
    cfg = TrainConfig(
        iterations=100,
        batch_size=4,
        log_every=50,
        input_noise=0.05,
        lr_schedule="cosine",
        reinit_d_below=1e3,
        device="cuda",
        compute_dtype=compute_dtype,
    )
    run = training._setup(model, cfg, random_category(32, n_train=8), seed=0, resume=None)
    assert run.reset.on_device

    def iteration(it: int) -> training.LossTerms:
        x, x_in = training._batch(run, it)
        terms = training._step(run, x, x_in, it)
        run.meter.add({"loss_g": terms.g, "loss_d": terms.d, **terms.parts})
        return terms

    for it in range(2):  # the first steps allocate memory and set up libraries: not the loop's steady state
        iteration(it)
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for it in range(2, 8):  # 8 images, batch 4: a new epoch every 2 steps
            terms = iteration(it)
        with pytest.raises(RuntimeError, match="synchroniz"):
            terms.d.item()  # the check does see a host sync
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    assert run.reset.settle() == 8  # the device-side rule ran: one reset per step
    assert all(np.isfinite(v) for v in run.meter.means().values())


def test_the_sync_free_reset_gives_the_same_run_as_the_form_that_reads_the_loss(monkeypatch) -> None:
    """On one GPU with deterministic kernels: the reset on the device (the default on CUDA) and the `.item()` form
    re-initialise the discriminator at the same steps with the same weights (at most one reset between two reports:
    log_every 1), so the two runs are bit-identical; and the resets do change the run."""
    model = ModelConfig(model="ssagan", image_size=32, **TINY)
    cfg = TrainConfig(iterations=6, batch_size=4, log_every=1, reinit_d_below=1e3, device="cuda", deterministic=True)
    data = random_category(32)
    forms: list[bool] = []

    def recorded(*args, on_device: bool) -> DiscriminatorReset:
        forms.append(on_device)
        return DiscriminatorReset(*args, on_device=on_device)

    monkeypatch.setattr(training, "DiscriminatorReset", recorded)
    on_device = train(model, cfg, data, seed=0)
    monkeypatch.setattr(training, "DiscriminatorReset", _item_form)
    read_each_step = train(model, cfg, data, seed=0)
    monkeypatch.setattr(training, "DiscriminatorReset", DiscriminatorReset)
    never = train(model, dataclasses.replace(cfg, reinit_d_below=0.0), data, seed=0)

    assert forms == [True]
    assert on_device.metrics["d_reinits"] == read_each_step.metrics["d_reinits"] == 6
    assert _losses(on_device.history) == _losses(read_each_step.history)
    _assert_same_scores(on_device, read_each_step)
    assert never.metrics["d_reinits"] == 0 and _losses(never.history) != _losses(on_device.history)


def _item_form(*args, on_device: bool) -> DiscriminatorReset:
    """The reset that reads the loss every step (`.item()`, the CPU's form), on whatever device the run is."""
    return DiscriminatorReset(*args, on_device=False)


def _run_the_runner(argv: list[str]) -> int:
    """`ablation.run.cli.main` in this process, on a local Ray instance it starts with one GPU; where another test has
    already connected this process to Ray (an instance without that GPU), the same entry point in a fresh process."""
    import ray

    if not ray.is_initialized():
        return main(argv)
    code = "import sys; from ablation.run.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, check=False).returncode


def test_four_trials_with_a_quarter_gpu_each_run_together_on_one_device(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # a local instance, never a cluster named in the environment
    study = write_study(
        tmp_path / "study.yaml",
        model={"model": "ssagan"},  # the paper's widths: steps long enough for the trials to overlap
        dataset__image_size=64,
        dataset__n_train=32,
        train={"iterations": 150, "batch_size": 16, "log_every": 50},
        resources={"cpus_per_trial": 1, "gpus_per_trial": 0.25, "max_concurrent": 4, "retries": 0},
    )
    out = tmp_path / "out"
    argv = [str(study), "--out", str(out), "--no-report", "--num-gpus", "1", "--num-cpus", "4"]
    assert _run_the_runner(argv) == 0
    trials = pd.read_parquet(out / TRIALS_FILE)
    assert len(trials) == 4 and set(trials["status"]) == {"ok"}
    assert all(device.startswith("cuda") for device in trials["device"]), list(trials["device"])
    assert set(trials["gpus"]) == {0.25} and trials["node"].nunique() == 1
    started, finished = pd.to_datetime(trials["started_at"]), pd.to_datetime(trials["finished_at"])
    assert started.max() < finished.min(), "the four trials never all ran at the same time"
