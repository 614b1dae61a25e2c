"""What a model costs per image, counted rather than timed: forward FLOPs of the generator and the discriminator
(torch's `FlopCounterMode`), the hardware-free figure a user scales to their own machine (`--dry-run`, benchmark)."""

from __future__ import annotations

import contextlib
import copy
import sys
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

from .config import ModelConfig
from .factory import IMAGE_CHANNELS, build_discriminator, build_generator

# Up to this size the count runs a real forward on the CPU (at 64 px at most 6 GFLOP per image, the paper's model:
# milliseconds); above it, on the meta device, where 256 px costs nothing either (a real forward there is 1.3 TFLOP).
REAL_COUNT_MAX_SIZE = 64


def forward_flops(cfg: ModelConfig, networks: tuple[nn.Module, nn.Module] | None = None) -> dict[str, float]:
    """FLOPs of one image's forward pass through the generator and through the discriminator (a multiply-add counts
    2), in eval mode. A training step costs about 3x the forward of G plus 3 discriminator passes (two in
    the losses, backward through both); time it rather than count it (the counter's backward totals are not reliable
    for every op). Attention counts its Q K^T and A V matmuls as SDPA computes them."""
    # Larger images on the meta device: shapes only, no memory and no arithmetic, so the count at 256 px (where
    # attention's N x N would be 17 GB if an SDPA path materialised it) takes a fraction of a second. Small ones on
    # the CPU, which does not import torch's compiler (meta kernels of pointwise ops do: 1.2-1.5 s the first time in a
    # process). On the CPU, SDPA is held to its math path, which the counter sees as the two matmuls, as it sees every
    # path on meta (it has no formula for the CPU flash kernel, and would count that attention as 0); the two devices
    # give the same count (tests/test_cost.py).
    device = "cpu" if cfg.image_size <= REAL_COUNT_MAX_SIZE else "meta"
    if networks is not None:
        generator, discriminator = (copy.deepcopy(net).to(device) for net in networks)
    else:
        with torch.device(device):
            generator, discriminator = build_generator(cfg), build_discriminator(cfg)
    generator.eval(), discriminator.eval()
    with torch.device(device):
        if cfg.model == "anogan":
            g_input = torch.zeros(1, cfg.nz, 1, 1)
        else:
            g_input = torch.zeros(1, IMAGE_CHANNELS, cfg.image_size, cfg.image_size)
        x = torch.zeros(1, IMAGE_CHANNELS, cfg.image_size, cfg.image_size)
    flops = {}
    with torch.no_grad(), _counter_without_compiler(), sdpa_kernel(SDPBackend.MATH):
        for name, net, arg in (("generator", generator, g_input), ("discriminator", discriminator, x)):
            counter = FlopCounterMode(display=False)
            with counter:
                net(arg)
            flops[name] = float(counter.get_total_flops())
    return flops


@contextlib.contextmanager
def _counter_without_compiler() -> Iterator[None]:
    """Count without importing torch's compiler when nothing has imported it yet.

    torch wraps every dispatch mode's `__torch_dispatch__` (the counter's too) in `torch._disable_dynamo`, which
    imports `torch._dynamo` on the first call, only to mark the function as not to be traced: 1.2-1.5 s of a study's
    start here (docs/performance.md). While `torch._dynamo` is not imported nothing in the process can be tracing, so
    the wrapper's own cache slot is pointed at the plain function for the count and cleared after: the same call,
    without the import. Any other state (torch already compiling, a torch whose wrapper looks different) keeps torch's
    path."""
    mode = getattr(flop_counter, "_FlopCounterMode", None)
    wrapped = getattr(mode, "__dict__", {}).get("__torch_dispatch__")
    raw = getattr(wrapped, "__wrapped__", None)
    slot = "__dynamo_disable"  # the attribute torch._compile._disable_dynamo caches the disabled function in
    if "torch._dynamo" in sys.modules or raw is None or hasattr(raw, slot):
        yield
        return
    setattr(raw, slot, raw)
    try:
        yield
    finally:
        if getattr(raw, slot, None) is raw:
            delattr(raw, slot)
