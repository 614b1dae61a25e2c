"""The FLOP count (`ssagan_core.cost`): the same on the CPU and on the meta device, attention counted at every stage,
and no import of torch's compiler on the CPU path (it was 1.2-1.5 s of every study's start)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from torch.utils import flop_counter

from ssagan_core import cost
from ssagan_core.blocks import SelfAttention2d
from ssagan_core.config import ModelConfig

from .helpers import SWITCHES, TINY, switch_id


def _both_devices(cfg: ModelConfig, monkeypatch) -> tuple[dict, dict]:
    on_cpu = cost.forward_flops(cfg)
    with monkeypatch.context() as m:
        m.setattr(cost, "REAL_COUNT_MAX_SIZE", 0)  # every size on the meta device
        on_meta = cost.forward_flops(cfg)
    return on_cpu, on_meta


@pytest.mark.parametrize("switches", SWITCHES, ids=switch_id)
def test_the_cpu_count_equals_the_meta_count_for_every_switch_combination(switches: dict, monkeypatch) -> None:
    on_cpu, on_meta = _both_devices(ModelConfig(image_size=32, **switches, **TINY), monkeypatch)
    assert on_cpu == on_meta
    assert on_cpu["generator"] > 0 and on_cpu["discriminator"] > 0


@pytest.mark.parametrize(
    "fields",
    [
        {"model": "skip_ganomaly"},
        {"model": "ganomaly"},
        {"model": "anogan"},
        {"attention_kv_pool": 2},
        {"attention_kv_pool": 4, "image_size": 64},  # the ELPV recipe's attention, whose last stage SDPA's CPU
        {"attention_stages": (1,), "image_size": 64},  # flash kernel took (the counter has no formula for it)
    ],
    ids=lambda f: "-".join(f"{k}={v}" for k, v in f.items()),
)
def test_the_cpu_count_equals_the_meta_count_for_presets_and_pooled_attention(fields: dict, monkeypatch) -> None:
    on_cpu, on_meta = _both_devices(ModelConfig(**{"image_size": 32, **TINY, **fields}), monkeypatch)
    assert on_cpu == on_meta


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("kv_pool", [1, 2, 4])
def test_attention_counts_its_two_matmuls_whatever_kernel_training_would_take(kv_pool, memory_format) -> None:
    """In channels_last (how training runs) SDPA takes the CPU flash kernel, which torch's counter would count as 0;
    the count holds SDPA to the path it can see: Q^T K and A V over N queries, M = N / kv_pool^2 keys, the query and
    key zero-padded to C on the CPU, plus the three 1x1 convs."""
    c, h = 32, 16
    n, m = h * h, (h // kv_pool) ** 2
    block = SelfAttention2d(c, kv_pool).eval().to(memory_format=memory_format)
    x = torch.zeros(1, c, h, h).contiguous(memory_format=memory_format)
    counter = flop_counter.FlopCounterMode(display=False)
    with torch.no_grad(), cost._counter_without_compiler(), cost.sdpa_kernel(cost.SDPBackend.MATH), counter:
        block(x)
    convs = 2 * n * c * (c // 8) * 2 + 2 * n * c * c  # query, key (to C/8) and value (to C)
    assert counter.get_total_flops() == convs + 2 * n * m * c + 2 * n * m * c


def test_counting_on_the_cpu_does_not_import_the_compiler_and_leaves_torch_as_it_was() -> None:
    """A fresh process, as a study's driver is: the count must not import torch._dynamo, must leave no mark on torch's
    dispatch-mode wrapper, and a meta-device count after it (which does import the compiler) still works."""
    code = textwrap.dedent(
        """
        import sys
        from torch.utils import flop_counter
        from ssagan_core.config import ModelConfig
        from ssagan_core.cost import forward_flops
        small = forward_flops(ModelConfig(image_size=32, base_channels=4, max_channels=16, ndf=4))
        assert "torch._dynamo" not in sys.modules, "the CPU count imported torch._dynamo"
        raw = flop_counter._FlopCounterMode.__dict__["__torch_dispatch__"].__wrapped__
        assert not hasattr(raw, "__dynamo_disable"), "the count left its mark on torch's wrapper"
        large = forward_flops(ModelConfig(image_size=128, base_channels=4, max_channels=16, ndf=4))
        assert "torch._dynamo" in sys.modules and large["generator"] > small["generator"] > 0
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
