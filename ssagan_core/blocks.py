"""The switchable building blocks of the paper's generator, one small factory per ablation axis.

Blocks take plain ints and kind strings so that each can be built and tested alone; `ssagan.Generator` assembles
them from a `ModelConfig`. A component that is switched off is an `nn.Identity()`.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def make_conv(kind: str, in_channels: int, out_channels: int) -> nn.Module:
    """A 3x3 convolution: `standard`, or `dsc` = depthwise 3x3 + pointwise 1x1 (section 3.2 of the paper)."""
    if kind == "standard":
        return nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
    if kind == "dsc":
        return nn.Sequential(
            nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False),  # depthwise
            nn.Conv2d(in_channels, out_channels, 1, bias=False),  # pointwise
        )
    raise ValueError(f"conv: {kind!r} is not one of 'dsc', 'standard'")


def conv_bn_act(kind: str, in_channels: int, out_channels: int) -> nn.Sequential:
    """Convolution, BatchNorm, LeakyReLU(0.2): one of the paper's "DSC" units (bias is redundant before BN).

    The activation works in place on BatchNorm's output, which nothing else reads (BatchNorm's backward keeps its
    input): the same values and gradients, one large tensor fewer per unit; 1.4x the attention-off train step at
    64 px here (docs/performance.md)."""
    return nn.Sequential(
        make_conv(kind, in_channels, out_channels), nn.BatchNorm2d(out_channels), nn.LeakyReLU(0.2, inplace=True)
    )


class DoubleConv(nn.Sequential):
    """Two conv units, in -> out -> out: raises the channel count in the encoder, lowers it in the decoder."""

    def __init__(self, kind: str, in_channels: int, out_channels: int) -> None:
        super().__init__(conv_bn_act(kind, in_channels, out_channels), conv_bn_act(kind, out_channels, out_channels))

    def forward_concat(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """`self(torch.cat(parts, dim=1))` without building the concatenation (`conv_of_concat`)."""
        (conv, bn, act), second = self
        return second(act(bn(conv_of_concat(conv, parts))))


def conv_of_concat(conv: nn.Module, parts: list[torch.Tensor]) -> torch.Tensor:
    """`conv(torch.cat(parts, dim=1))` for a `make_conv` module, computed part by part with its weights' channel
    slices: a dense convolution is a sum over input channels, a depthwise one is per channel, so
    conv(cat(a, b)) = conv_a(a) + conv_b(b) (the same weights; equal up to float summation order).

    The decoder's first unit runs on the skip concatenated with the upsampled map: 192 channels at full resolution
    in the paper's generator (100 MB at 64 px, batch 32). Never building it saves writing it, slicing its gradient
    back apart and the dense copy of that slice in the upsampling's backward."""
    if isinstance(conv, nn.Sequential):  # dsc: depthwise per part, then the pointwise sum over the parts
        depthwise, pointwise = conv
        return conv_of_concat(pointwise, [depthwise_part(depthwise, x, i) for x, i in _offsets(parts)])
    out = None
    for x, i in _offsets(parts):
        bias = conv.bias if out is None else None  # the bias once
        y = F.conv2d(x, conv.weight[:, i : i + x.shape[1]], bias, conv.stride, conv.padding, conv.dilation)
        out = y if out is None else out.add_(y)  # in place: a convolution's backward never reads its output
    return out


def depthwise_part(depthwise: nn.Conv2d, x: torch.Tensor, offset: int) -> torch.Tensor:
    """The depthwise convolution of channels offset .. offset + C of its input, given those channels as x."""
    c = x.shape[1]
    weight = depthwise.weight[offset : offset + c]
    bias = None if depthwise.bias is None else depthwise.bias[offset : offset + c]
    return F.conv2d(x, weight, bias, depthwise.stride, depthwise.padding, depthwise.dilation, groups=c)


def _offsets(parts: list[torch.Tensor]) -> list[tuple[torch.Tensor, int]]:
    """Each part with the channel index where it starts in the concatenation."""
    starts = np.cumsum([0] + [x.shape[1] for x in parts[:-1]]).tolist()
    return list(zip(parts, starts, strict=True))


def make_downsample(kind: str, channels: int) -> nn.Module:
    """Halve the resolution: 2x2 `maxpool` (the paper) or a learned 4x4 stride-2 conv (`strided`, Skip-GANomaly)."""
    if kind == "maxpool":
        return nn.MaxPool2d(2)
    if kind == "strided":
        return nn.Sequential(
            nn.Conv2d(channels, channels, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.LeakyReLU(0.2, inplace=True),
        )
    raise ValueError(f"down: {kind!r} is not one of 'maxpool', 'strided'")


def make_upsample(kind: str, channels: int) -> nn.Module:
    """Double the resolution: `bilinear` interpolation (the paper) or a 4x4 stride-2 `transposed` conv."""
    if kind == "bilinear":
        return BilinearUp2()
    if kind == "transposed":
        return nn.Sequential(
            nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.LeakyReLU(0.2, inplace=True),
        )
    raise ValueError(f"up: {kind!r} is not one of 'bilinear', 'transposed'")


class BilinearUp2(nn.Upsample):
    """2x bilinear upsampling (align_corners=False). On CUDA under `torch.use_deterministic_algorithms`
    (`train.deterministic`) it runs as two matmuls with the interpolation matrices: torch's bilinear kernel has no
    deterministic CUDA backward, a matmul's is. Elsewhere it is torch's kernel, with the gradient made dense first
    (`_DenseGradBilinear2x`)."""

    def __init__(self) -> None:
        super().__init__(scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda and torch.are_deterministic_algorithms_enabled():
            return upsample2x_by_matmul(x)
        return _DenseGradBilinear2x.apply(x)


class _DenseGradBilinear2x(torch.autograd.Function):
    """torch's bilinear x2 whose backward first copies the incoming gradient into the input's memory format.

    Where the upsampled map is concatenated with a skip, the gradient reaching the upsampling is a channel slice of
    the concatenation's gradient: strided, dense in neither format (the paper's generator no longer builds that
    concatenation, `conv_of_concat`, so its gradient arrives dense and the copy is a no-op). torch's CPU backward
    kernel runs 2.3-3.4x slower on such a gradient than on a dense channels_last one, more than the copy costs
    (measured at the 64 px generator's shapes, batch 32, 2 threads: 512x8x8 19.1 -> 5.7 ms, 256x16x16 47.1 -> 18.6
    ms, 128x32x32 100.6 -> 44.0 ms forward + backward). The result is the same to the bit."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.input_size = list(x.shape)
        channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        ctx.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous(memory_format=ctx.memory_format)
        return torch.ops.aten.upsample_bilinear2d_backward(grad, list(grad.shape[-2:]), ctx.input_size, False, 2.0, 2.0)


def upsample2x_by_matmul(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, 2H, 2W): bilinear x2 (align_corners=False) as rows @ x @ cols^T; equal to
    `F.interpolate` up to float rounding."""
    h, w = x.shape[-2:]
    rows = torch.from_numpy(_bilinear_matrix(h)).to(x.device, x.dtype)  # (2H, H)
    cols = torch.from_numpy(_bilinear_matrix(w)).to(x.device, x.dtype)  # (2W, W)
    return rows @ x @ cols.T  # (B, C, 2H, W) @ (W, 2W)


@functools.lru_cache(maxsize=16)
def _bilinear_matrix(n: int) -> np.ndarray:
    """(2n, n) float32: output pixel o reads source coordinate (o + 0.5) / 2 - 0.5 (clamped at 0), split between
    its two neighbours as torch's bilinear kernel does; the last row's two neighbours are both the edge pixel."""
    src = np.maximum((np.arange(2 * n) + 0.5) / 2 - 0.5, 0.0)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, n - 1)
    frac = src - i0
    m = np.zeros((2 * n, n), np.float64)
    np.add.at(m, (np.arange(2 * n), i0), 1 - frac)
    np.add.at(m, (np.arange(2 * n), i1), frac)
    return m.astype(np.float32)


def make_attention(enabled: bool, channels: int, kv_pool: int = 1) -> nn.Module:
    """A `SelfAttention2d` block, or `nn.Identity()` when attention is off for this stage."""
    return SelfAttention2d(channels, kv_pool) if enabled else nn.Identity()


class SelfAttention2d(nn.Module):
    """SAGAN self-attention (Zhang et al. 2018; the paper's section 3.1, equation 4): `x + gamma * attention(x)`.

    Query and key are 1x1 convs to C/8 channels, value a 1x1 conv to C channels; the attention map is
    softmax(Q^T K) over the N = H*W positions, unscaled as in SAGAN, and `gamma` starts at 0 so the block starts as
    the identity. The N x N map is never materialised: query and key are zero-padded to the value's width C (which
    leaves Q^T K unchanged) so that `scaled_dot_product_attention` sees 4-D tensors of equal head dim with a
    contiguous last dim, the condition for its memory-light flash kernel on CPU (otherwise it silently falls back
    to the O(N^2) math path). On CUDA they stay C/8 wide: its memory-efficient kernel takes unequal head dims
    (`pad_qk`). One head of width C measured 4x faster here than splitting the value into C/8-wide
    heads (tiny GEMMs). Optional max-pooling of keys and values follows the official SAGAN code (`kv_pool`,
    2 there), cutting the cost by kv_pool^2.
    """

    def __init__(self, channels: int, kv_pool: int = 1) -> None:
        super().__init__()
        self.qk_channels = max(1, channels // 8)
        self.kv_pool = kv_pool
        self.query = nn.Conv2d(channels, self.qk_channels, 1)
        self.key = nn.Conv2d(channels, self.qk_channels, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    pad_qk: bool | None = None
    """Zero-pad query and key to C channels: None = on the CPU only (its flash kernel needs equal head dims); on
    CUDA the memory-efficient kernel takes the C/8-wide query and key as they are, 1.8x fewer FLOPs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.query(x), self.key(x), self.value(x)
        if self.kv_pool > 1:
            k, v = F.max_pool2d(k, self.kv_pool), F.max_pool2d(v, self.kv_pool)
        q, k = _tokens(q).unsqueeze(1), _tokens(k).unsqueeze(1)  # (B, 1, N, C/8), (B, 1, M, C/8); M = N / kv_pool^2
        if self.pad_qk if self.pad_qk is not None else not x.is_cuda:
            pad = (0, c - self.qk_channels)
            q, k = F.pad(q, pad), F.pad(k, pad)  # (B, 1, N, C), (B, 1, M, C); zero columns add nothing to Q^T K
        v = _tokens(v).unsqueeze(1)  # (B, 1, M, C)
        out = F.scaled_dot_product_attention(q, k, v, scale=1.0)  # (B, 1, N, C); SAGAN has no 1/sqrt(d)
        out = out.view(b, h, w, c).permute(0, 3, 1, 2)  # (B, C, H, W) in channels_last memory
        return x + self.gamma * out


def _tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C); a free view when x is channels_last."""
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, x.shape[1])
