"""The networks: every switch combination builds, trains and scores; each switch changes what it says; the
baselines match the official code parameter for parameter; the attention block is exact SAGAN attention."""

from __future__ import annotations

import ast
import dataclasses
import pathlib
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ssagan_core
from ssagan_core import (
    ModelConfig,
    SelfAttention2d,
    TrainConfig,
    build_discriminator,
    build_generator,
    count_parameters,
    train,
)
from ssagan_core.blocks import BilinearUp2, DoubleConv, conv_of_concat, make_conv, upsample2x_by_matmul

from .helpers import SWITCHES, TINY, random_category, switch_id

STEP = TrainConfig(iterations=1, batch_size=2, log_every=1, device="cpu")


def _one_step(cfg: ModelConfig, size: int) -> tuple[dict, dict]:
    """Train one step through the real loop; return (initial generator+discriminator weights, weights after)."""
    torch.manual_seed(0)
    before = {
        **build_generator(cfg).state_dict(),
        **{"D." + k: v for k, v in build_discriminator(cfg).state_dict().items()},
    }
    states = []
    result = train(
        cfg, STEP, random_category(size, n_train=4, n_test=2), seed=0, callback=lambda p: states.append(p.state())
    )
    after = {**states[-1]["generator"], **{"D." + k: v for k, v in states[-1]["discriminator"].items()}}
    losses = {k: v for k, v in result.metrics.items() if k.startswith("final_")}
    assert losses and all(torch.isfinite(torch.tensor(v)) for v in losses.values()), losses
    assert torch.isfinite(torch.tensor(result.test_scores["score"])).all()
    return before, after


def _changed(before: dict, after: dict, prefix: str = "") -> bool:
    return any(
        not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix) and before[k].is_floating_point()
    )


def test_every_switch_combination_trains_and_updates_weights(switches: dict) -> None:
    cfg = ModelConfig(image_size=32, **switches, **TINY)
    before, after = _one_step(cfg, 32)
    assert _changed(before, after, "encoder.0") and _changed(before, after, "head")
    assert _changed(before, after, "D.features")


@pytest.mark.slow
@pytest.mark.parametrize("size", [64, 128, 256])
@pytest.mark.parametrize("switches", SWITCHES, ids=switch_id)
def test_every_switch_combination_at_every_size(switches: dict, size: int) -> None:
    """The issue's matrix: 16 combinations x 32/64/128/256 px (32 px runs in the fast test above). Above 64 px the
    keys/values are pooled to keep a CPU step in seconds; the unpooled 256 px attention has its own test below."""
    pool = {64: 1, 128: 2, 256: 4}[size]
    cfg = ModelConfig(image_size=size, **switches, attention_kv_pool=pool, base_channels=2, max_channels=8, ndf=2, nz=4)
    _one_step(cfg, size)


@pytest.mark.slow
def test_full_resolution_attention_at_256px_never_materialises_the_map() -> None:
    """The paper's setting at 256 px puts attention on the 256x256 stage: N = 65,536 positions, an N x N map of
    16 GiB per image. Forward and backward must run in a small fraction of that (peak RSS of a fresh process)."""
    code = """
import resource, torch
from ssagan_core import SelfAttention2d
torch.set_num_threads(2)
m = SelfAttention2d(4).to(memory_format=torch.channels_last)
with torch.no_grad():
    m.gamma.fill_(1.0)
x = torch.randn(1, 4, 256, 256).contiguous(memory_format=torch.channels_last).requires_grad_()
m(x).square().mean().backward()
assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert int(out.split()[-1]) < 2048, f"peak RSS {out.split()[-1]} MiB"


@pytest.mark.parametrize("model", ["skip_ganomaly", "ganomaly", "anogan"])
def test_baselines_train_and_update_weights(model: str) -> None:
    cfg = ModelConfig(model=model, image_size=32, anogan_steps=2, **TINY)
    before, after = _one_step(cfg, 32)
    assert _changed(before, after, "") and _changed(before, after, "D.")


@pytest.mark.parametrize(
    ("size", "generator", "discriminator"), [(32, 16_659_075, 1_069_700), (64, 29_244_035, 3_577_476)]
)
def test_skip_ganomaly_matches_the_official_parameter_counts(size: int, generator: int, discriminator: int) -> None:
    cfg = ModelConfig(model="skip_ganomaly", image_size=size)
    assert count_parameters(build_generator(cfg)) == generator
    assert count_parameters(build_discriminator(cfg)) == discriminator


@pytest.mark.parametrize("model", ["ssagan", "skip_ganomaly", "ganomaly", "anogan"])
@pytest.mark.parametrize("size", [32, 64])
def test_output_shapes(model: str, size: int) -> None:
    cfg = ModelConfig(model=model, image_size=size, **TINY)
    g, d = build_generator(cfg).eval(), build_discriminator(cfg).eval()
    x = torch.rand(2, 3, size, size) * 2 - 1
    out = g(torch.randn(2, cfg.nz, 1, 1)) if model == "anogan" else g(x)
    x_hat = out[0] if model == "ganomaly" else out
    assert x_hat.shape == x.shape and x_hat.abs().max() <= 1
    if model == "ganomaly":
        assert out[1].shape == out[2].shape == (2, cfg.nz, 1, 1)
    p, f = d(x)
    assert p.shape == (2,) and ((p > 0) & (p < 1)).all() and f.shape[0] == 2
    if model in ("ssagan", "skip_ganomaly"):
        assert f.shape == (2, cfg.nz, 1, 1)  # the paper's f(x): the discriminator's last conv layer


def _modules(cfg: ModelConfig, kind: type) -> list[nn.Module]:
    return [m for m in build_generator(cfg).modules() if isinstance(m, kind)]


def test_conv_switch() -> None:
    dsc, std = ModelConfig(conv="dsc"), ModelConfig(conv="standard")
    depthwise = [m for m in _modules(dsc, nn.Conv2d) if m.groups > 1]
    assert depthwise and all(m.groups == m.in_channels == m.out_channels and m.kernel_size == (3, 3) for m in depthwise)
    assert not [m for m in _modules(std, nn.Conv2d) if m.groups > 1]
    p_dsc, p_std = count_parameters(build_generator(dsc)), count_parameters(build_generator(std))
    assert p_dsc < 0.2 * p_std, (p_dsc, p_std)


def test_attention_switch() -> None:
    on = _modules(ModelConfig(attention=True), SelfAttention2d)
    assert [m.value.in_channels for m in on] == [64, 128, 256, 512, 512]
    assert _modules(ModelConfig(attention=False), SelfAttention2d) == []
    some = _modules(ModelConfig(image_size=128, attention_stages=(2, 3, 4), attention_kv_pool=2), SelfAttention2d)
    assert [m.value.in_channels for m in some] == [128, 256, 512] and all(m.kv_pool == 2 for m in some)


def test_down_switch() -> None:
    strided = [m for m in _modules(ModelConfig(down="strided"), nn.Conv2d) if m.stride == (2, 2)]
    assert len(strided) == 4 and all(m.kernel_size == (4, 4) for m in strided)
    assert len(_modules(ModelConfig(down="maxpool"), nn.MaxPool2d)) == 4
    assert not _modules(ModelConfig(down="strided"), nn.MaxPool2d)
    assert not [m for m in _modules(ModelConfig(down="maxpool"), nn.Conv2d) if m.stride == (2, 2)]


def test_up_switch() -> None:
    transposed = _modules(ModelConfig(up="transposed"), nn.ConvTranspose2d)
    assert len(transposed) == 4 and all(m.kernel_size == (4, 4) and m.stride == (2, 2) for m in transposed)
    assert not _modules(ModelConfig(up="transposed"), nn.Upsample)
    bilinear = _modules(ModelConfig(up="bilinear"), nn.Upsample)
    assert len(bilinear) == 4 and all(m.mode == "bilinear" for m in bilinear)
    assert not _modules(ModelConfig(up="bilinear"), nn.ConvTranspose2d)


@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (1, 2, 2, 8), (2, 4, 16, 16)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_bilinear_up_by_matmul_equals_interpolate(shape: tuple, channels_last: bool) -> None:
    """The deterministic CUDA form of `up: bilinear` (two matmuls) is torch's bilinear x2, forward and backward."""
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    reference = F.interpolate(a, scale_factor=2, mode="bilinear", align_corners=False)
    matmul = upsample2x_by_matmul(b)
    torch.testing.assert_close(matmul, reference, rtol=1e-5, atol=1e-6)
    grad = torch.randn(reference.shape, generator=torch.Generator().manual_seed(1))
    reference.backward(grad)
    matmul.backward(grad)
    torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-5)
    assert torch.equal(BilinearUp2()(x), reference.detach())  # off CUDA the module is torch's kernel


@pytest.mark.parametrize("channels_last", [False, True])
def test_bilinear_up_backward_on_a_sliced_gradient_equals_torchs(channels_last: bool) -> None:
    """The decoder hands the upsampling a channel slice of the concatenation's gradient; the module makes it dense
    before torch's backward kernel (faster on CPU): values and gradients stay torch's, to the bit."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, 5, 7, generator=gen).contiguous(memory_format=fmt)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    grad = torch.randn(2, 12, 10, 14, generator=gen).contiguous(memory_format=fmt)[:, 3:9]  # strided, as from cat
    reference = F.interpolate(a, scale_factor=2, mode="bilinear", align_corners=False)
    ours = BilinearUp2()(b)
    assert torch.equal(ours, reference)
    reference.backward(grad)
    ours.backward(grad)
    assert torch.equal(b.grad, a.grad)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("kind", ["dsc", "standard"])
def test_conv_of_a_concatenation_by_parts_equals_the_conv_of_the_concatenation(kind: str, bias: bool) -> None:
    """conv(cat(a, b)) computed part by part with the weights' channel slices: the same output and the same
    gradients for the inputs and every weight (float64, so only summation order can differ)."""
    torch.manual_seed(0)
    conv = make_conv(kind, 12, 5).double()
    if bias:  # make_conv builds none (BatchNorm follows); conv_of_concat still adds one once
        for m in conv.modules():
            if isinstance(m, nn.Conv2d):
                m.bias = nn.Parameter(torch.randn(m.out_channels, dtype=torch.float64))
    parts = [torch.randn(2, c, 6, 7, dtype=torch.float64, requires_grad=True) for c in (7, 1, 4)]
    whole = conv(torch.cat(parts, dim=1))
    by_parts = conv_of_concat(conv, parts)
    torch.testing.assert_close(by_parts, whole, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(whole)
    inputs = [*parts, *conv.parameters()]
    expected = torch.autograd.grad(whole, inputs, grad)
    for ours, reference in zip(torch.autograd.grad(by_parts, inputs, grad), expected, strict=True):
        torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("switches", SWITCHES, ids=switch_id)
def test_the_generator_without_its_concatenations_computes_the_same(switches: dict, monkeypatch) -> None:
    """The decoder's stages never build the skip concatenation (`DoubleConv.forward_concat`); putting it back
    changes no output and no gradient of the generator, for every switch combination."""
    cfg = ModelConfig(model="ssagan", image_size=32, **switches, **TINY)
    torch.manual_seed(0)
    generator = build_generator(cfg).double().train()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    results = []
    for concatenate in (False, True):
        if concatenate:
            monkeypatch.setattr(DoubleConv, "forward_concat", lambda self, parts: self(torch.cat(parts, dim=1)))
        generator.zero_grad()
        out = generator(x)
        out.square().sum().backward()
        results.append([out.detach(), *(p.grad.clone() for p in generator.parameters())])
    for ours, reference in zip(*results, strict=True):
        torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("model", ["ssagan", "skip_ganomaly", "ganomaly", "anogan"])
def test_in_place_activations_give_the_out_of_place_gradients(model: str) -> None:
    """The activations work in place (each on a tensor only it reads, or whose other readers see it through a
    ReLU); switching every one of them back to out-of-place changes no output and no gradient."""
    cfg = ModelConfig(model=model, image_size=32, base_channels=4, ndf=4, nz=8)
    shape = (2, 8, 1, 1) if model == "anogan" else (2, 3, 32, 32)  # AnoGAN generates from a latent
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    results = []
    for inplace in (True, False):
        torch.manual_seed(0)
        nets = [build_generator(cfg), build_discriminator(cfg)]
        acts = [m for net in nets for m in net.modules() if isinstance(m, (nn.LeakyReLU, nn.ReLU))]
        assert acts and all(m.inplace for m in acts)
        for m in acts:
            m.inplace = inplace
        generator, discriminator = nets
        out = generator(x)
        fake = out[0] if isinstance(out, tuple) else out
        probability, features = discriminator(fake)
        (fake.square().mean() + probability.sum() + features.square().mean()).backward()
        grads = [p.grad.clone() for net in nets for p in net.parameters() if p.grad is not None]
        results.append((fake.detach(), grads))
    assert torch.equal(results[0][0], results[1][0])
    assert len(results[0][1]) == len(results[1][1]) > 0
    assert all(torch.equal(a, b) for a, b in zip(results[0][1], results[1][1], strict=True))


def _naive_attention(m: SelfAttention2d, x: torch.Tensor) -> torch.Tensor:
    """softmax(Q^T K) V computed literally, with the N x N map (SAGAN's reference formulation)."""
    b, c, h, w = x.shape
    q, k, v = m.query(x), m.key(x), m.value(x)
    if m.kv_pool > 1:
        k, v = F.max_pool2d(k, m.kv_pool), F.max_pool2d(v, m.kv_pool)
    attention = torch.softmax(q.flatten(2).transpose(1, 2) @ k.flatten(2), dim=-1)  # (B, N, M)
    out = v.flatten(2) @ attention.transpose(1, 2)  # (B, C, N)
    return x + m.gamma * out.view(b, c, h, w)


@pytest.mark.parametrize("channels", [3, 16, 20, 64])
@pytest.mark.parametrize("kv_pool", [1, 2])
@pytest.mark.parametrize("channels_last", [False, True])
def test_attention_equals_naive_softmax(channels: int, kv_pool: int, channels_last: bool) -> None:
    torch.manual_seed(channels)
    m = SelfAttention2d(channels, kv_pool)
    assert m.gamma.item() == 0.0  # starts as the identity
    x = torch.randn(2, channels, 8, 12)
    assert torch.equal(m(x), x)
    with torch.no_grad():
        m.gamma.fill_(0.8)
    if channels_last:
        m, x = m.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(m(x), _naive_attention(m, x), rtol=1e-5, atol=1e-5)


def test_attention_uses_the_memory_light_kernel() -> None:
    m = SelfAttention2d(32).to(memory_format=torch.channels_last)
    x = torch.randn(2, 32, 16, 16).contiguous(memory_format=torch.channels_last).requires_grad_()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        m(x).sum().backward()
    kernels = {e.key for e in prof.key_averages()}
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in kernels, sorted(
        k for k in kernels if "attention" in k
    )
    assert "aten::_scaled_dot_product_flash_attention_for_cpu_backward" in kernels


def test_attention_gradients_reach_gamma_and_projections() -> None:
    m = SelfAttention2d(16)
    x = torch.randn(2, 16, 8, 8)
    m(x).pow(2).sum().backward()
    assert m.gamma.grad is not None and m.gamma.grad.abs() > 0  # gamma moves first; q/k/v follow once gamma != 0
    with torch.no_grad():
        m.gamma.fill_(0.5)
    m.zero_grad()
    m(x).pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in (m.query.weight, m.key.weight, m.value.weight))


def test_replace_makes_a_different_network() -> None:
    base = ModelConfig(image_size=32, **TINY)
    assert count_parameters(build_generator(dataclasses.replace(base, conv="standard"))) > count_parameters(
        build_generator(base)
    )


def test_core_does_not_import_orchestration_libraries() -> None:
    """The dependency points one way: ssagan_core never imports Ray, Optuna, pandas, pyarrow or YAML."""
    forbidden = {"ray", "optuna", "pandas", "pyarrow", "yaml", "ablation"}
    for path in pathlib.Path(ssagan_core.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            assert not {n.split(".")[0] for n in names} & forbidden, f"{path.name} imports {names}"
    # at run time too (scikit-learn may pull in pandas by itself, so only the orchestration libraries are checked)
    code = (
        "import sys, ssagan_core, ssagan_core.training, ssagan_core.data; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'optuna', 'yaml'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


@pytest.mark.parametrize("kv_pool", [1, 2])
@pytest.mark.parametrize("channels", [16, 64])
def test_attention_unpadded_cuda_form_equals_the_padded_cpu_form(channels: int, kv_pool: int) -> None:
    """On CUDA query and key go to SDPA C/8 wide (`pad_qk` off: the memory-efficient kernel takes unequal head
    dims); here on the CPU that form runs SDPA's math path. Both forms equal softmax(Q^T K) V, with equal gradients."""
    torch.manual_seed(channels)
    padded, unpadded = SelfAttention2d(channels, kv_pool), SelfAttention2d(channels, kv_pool)
    unpadded.load_state_dict(padded.state_dict())
    unpadded.pad_qk = False
    with torch.no_grad():
        padded.gamma.fill_(0.7), unpadded.gamma.fill_(0.7)
    x = torch.randn(2, channels, 8, 8).contiguous(memory_format=torch.channels_last)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    a, b = padded(xa), unpadded(xb)
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(b, _naive_attention(unpadded, x), rtol=1e-5, atol=1e-5)
    a.square().sum().backward(), b.square().sum().backward()
    torch.testing.assert_close(xb.grad, xa.grad, rtol=1e-4, atol=1e-4)
    for (name, pa), (_, pb) in zip(padded.named_parameters(), unpadded.named_parameters(), strict=True):
        torch.testing.assert_close(pb.grad, pa.grad, rtol=1e-4, atol=1e-4, msg=name)


@pytest.mark.parametrize("pad_qk", [None, False])
def test_attention_under_bf16_autocast_stays_within_bf16_rounding(pad_qk) -> None:
    """`train.compute_dtype: bf16` runs attention in bfloat16 (8 mantissa bits): it must still be the same function,
    within bfloat16's rounding of the fp32 result, in both the padded and the unpadded form."""
    torch.manual_seed(0)
    m = SelfAttention2d(32).to(memory_format=torch.channels_last)
    m.pad_qk = pad_qk
    with torch.no_grad():
        m.gamma.fill_(1.0)
    x = torch.randn(2, 32, 8, 8).contiguous(memory_format=torch.channels_last)
    exact = _naive_attention(m, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = m(x)
    assert low.dtype == torch.float32  # x + gamma * out: the residual keeps the input's dtype
    torch.testing.assert_close(low, exact, rtol=2e-2, atol=2e-2)
    assert not torch.equal(low, exact)  # bfloat16 did run
