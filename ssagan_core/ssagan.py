"""The paper's generator (section 3.2, Figure 4): a U-shaped encoder-decoder whose every component is switchable."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import DoubleConv, make_attention, make_downsample, make_upsample
from .config import ModelConfig


def stage_channels(cfg: ModelConfig) -> list[int]:
    """Channels of encoder stages 1..depth: base, 2*base, ... capped at max_channels (64, 128, 256, 512, 512)."""
    return [min(cfg.base_channels * 2**i, cfg.max_channels) for i in range(cfg.depth)]


class EncoderStage(nn.Sequential):
    """Two conv units that raise the channel count, then self-attention (or identity)."""

    def __init__(self, conv: str, in_channels: int, out_channels: int, attention: bool, kv_pool: int) -> None:
        super().__init__()
        self.convs = DoubleConv(conv, in_channels, out_channels)
        self.attention = make_attention(attention, out_channels, kv_pool)


class Generator(nn.Module):
    """The Skip-Self-Attention GAN generator: (B, 3, H, W) -> (B, 3, H, W) in [-1, 1].

    Encoder stage k (1..depth) = DoubleConv + self-attention at resolution H / 2^(k-1); the attended map of stages
    1..depth-1 is both the skip connection and the input of the downsampling to stage k+1; the deepest stage is the
    bottleneck. Decoder stage k = upsample, concatenate skip k, DoubleConv lowering to stage k's channels. A final
    1x1 conv + tanh gives the image.
    """

    def __init__(self, cfg: ModelConfig, in_channels: int = 3) -> None:
        super().__init__()
        channels = stage_channels(cfg)
        attended = set(cfg.stages_with_attention)
        previous = [in_channels, *channels[:-1]]
        self.encoder = nn.ModuleList(
            EncoderStage(cfg.conv, c_in, c, k + 1 in attended, cfg.attention_kv_pool)
            for k, (c_in, c) in enumerate(zip(previous, channels, strict=True))
        )
        self.down = nn.ModuleList(make_downsample(cfg.down, c) for c in channels[:-1])
        # decoder stages run from the deepest skip (stage depth-1) back to stage 1
        self.up = nn.ModuleList(make_upsample(cfg.up, c) for c in reversed(channels[1:]))
        self.decoder = nn.ModuleList(
            DoubleConv(cfg.conv, c_below + c, c)
            for c_below, c in zip(reversed(channels[1:]), reversed(channels[:-1]), strict=True)
        )
        self.head = nn.Sequential(nn.Conv2d(channels[0], in_channels, 1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for k, stage in enumerate(self.encoder):
            x = stage(x)
            if k < len(self.down):
                skips.append(x)
                x = self.down[k](x)
        for up, decode, skip in zip(self.up, self.decoder, reversed(skips), strict=True):
            x = decode.forward_concat([up(x), skip])  # = decode(torch.cat([up(x), skip], dim=1))
        return self.head(x)
