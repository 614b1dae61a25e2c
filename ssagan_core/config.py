"""The configs: one frozen dataclass for the model (architecture, loss weights, score) and one for training.

Each ablation axis is one field; its name is also the study-file key and the Parquet column. Variants are made with
`dataclasses.replace`, never by mutation, so a result row describes exactly what was trained.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .presets import MODELS, PRESETS, SWITCHES

CONVS = SWITCHES["conv"]
DOWNS = SWITCHES["down"]
UPS = SWITCHES["up"]
SCORE_NORMALIZE = ("none", "val_mean")
SCORE_REDUCE = ("mean", "max", "mean_max")
DEVICES = ("auto", "cpu", "cuda")
THRESHOLD_RULES = ("val_quantile", "val_f1")
LR_SCHEDULES = ("constant", "cosine", "linear")
COMPUTE_DTYPES = ("fp32", "bf16")
CPU_MEMORY = ("keep", "system")
RUNTIME_FIELDS = ("device", "num_threads")
"""`TrainConfig` fields that say where a run executes, not what it is: the runner sets them per machine, a study file
cannot, and a result's settings leave them out."""
# `deterministic` is not one: like `channels_last`, `compute_dtype` and `compile` it chooses how the arithmetic is done,
# which can change a run's numbers (slightly), so a study file sets it and every result row records it; the runner
# has no per-machine reason to change it.


def _choice(name: str, value: object, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name}: {value!r} is not one of {', '.join(map(repr, allowed))}")


def _check(name: str, ok: bool, requirement: str, value: object) -> None:
    if not ok:
        raise ValueError(f"{name}: must be {requirement}, got {value!r}")


@dataclass(frozen=True)
class ModelConfig:
    """Which network to build and how it is trained and scored. Fields left `None` take the preset's value."""

    model: str = "ssagan"
    """`ssagan` (the paper's model, built from the switches below), `skip_ganomaly` (the official networks),
    `ganomaly` (encoder-decoder-encoder), or `anogan` (DCGAN + latent search at test time)."""
    image_size: int = 64
    """Input side in pixels, a power of two from 16 (32, 64, 128 and 256 are the tested sizes)."""
    attention: bool | None = None
    """SAGAN self-attention after each encoder stage (ssagan: on). Baselines have none."""
    attention_stages: tuple[int, ...] | None = None
    """1-based encoder stages that get attention; None = every stage (the paper's setting)."""
    attention_kv_pool: int = 1
    """Max-pool keys and values by this factor (the official SAGAN code uses 2); 1 = no pooling."""
    conv: str | None = None
    """`dsc` (depthwise 3x3 + pointwise 1x1) or `standard` (3x3) convolutions in the encoder/decoder stages."""
    down: str | None = None
    """`maxpool` (2x2) or `strided` (4x4 stride-2 conv) downsampling between encoder stages."""
    up: str | None = None
    """`bilinear` or `transposed` (4x4 stride-2 transposed conv) upsampling in the decoder."""
    w_adv: float | None = None
    """Weight of the adversarial loss (ssagan 0.5; skip_ganomaly and ganomaly 1)."""
    w_ctx: float | None = None
    """Weight of the contextual (L1 reconstruction) loss (ssagan 0.3; skip_ganomaly and ganomaly 50)."""
    w_lat: float | None = None
    """Weight of the latent loss (ssagan 0.2; skip_ganomaly and ganomaly 1)."""
    score_lambda: float = 0.9
    """Anomaly score = lambda * reconstruction error + (1 - lambda) * latent error (Skip-GANomaly's 0.9)."""
    score_normalize: str = "none"
    """`none`: the two errors on their raw scales (the paper's and the official code's score), where the latent error
    can be orders of magnitude larger than the reconstruction error and decide the score alone; `val_mean`: each error
    divided by its mean over the validation split's normal images before the lambda mix (no test data involved)."""
    score_reduce: str = "mean"
    """How the reconstruction error of a skip model's score is reduced to one number per image: `mean`, the mean
    squared error over the image (Skip-GANomaly's score); `max`, the maximum of its anomaly map (the squared error
    averaged over channels and smoothed by `map_sigma`), which a small defect on a busy texture moves more than the
    mean; `mean_max`, the average of the two, each divided by its mean over the validation normal images (so it needs
    `score_normalize: val_mean`): the mean's seed-to-seed steadiness with most of the maximum's reach (docs/studies.md,
    "The ELPV recipe"). Both reductions are saved per image (`rec`, `rec_max`)."""
    map_sigma: float | None = None
    """Smoothing (Gaussian sigma, pixels) of the anomaly maps behind `pixel_auc`, `aupro` and `score_reduce: max`;
    unset: 4 px at 256 px, scaled to `image_size` (1 px at 64), the usual default; 0: no smoothing."""
    base_channels: int = 64
    """Channels of the first encoder stage (ngf); ssagan doubles them per stage up to `max_channels`."""
    max_channels: int = 512
    """The widest encoder stage (ngf x 8 in U-Net); stages stop doubling here."""
    depth: int = 5
    """ssagan: number of encoder stages (depth - 1 downsamplings, like U-Net's 4; at most log2(image_size))."""
    ndf: int = 64
    """Discriminator width (first conv's channels)."""
    nz: int = 100
    """Size of the discriminator's feature vector (skip models) or of the latent code (ganomaly, anogan)."""
    anogan_steps: int = 500
    """AnoGAN: latent-search optimisation steps per test image (Schlegl et al. 2017 use 500)."""
    anogan_lambda: float = 0.1
    """AnoGAN: weight of the discrimination loss against the residual loss in the latent search."""

    def __post_init__(self) -> None:
        _choice("model", self.model, MODELS)
        _check(
            "image_size",
            is_power_of_two(self.image_size) and self.image_size >= 16,
            "a power of two >= 16",
            self.image_size,
        )
        preset = PRESETS[self.model]
        for name in (*SWITCHES, *preset.weights):
            value, default = getattr(self, name), preset.settings[name]
            if value is None:
                object.__setattr__(self, name, default)
            elif name in preset.fixes and value != default:
                raise ValueError(_fixed_by_preset(self.model, name))
        _check("attention", isinstance(self.attention, bool), "true or false", self.attention)
        _choice("conv", self.conv, CONVS)
        _choice("down", self.down, DOWNS)
        _choice("up", self.up, UPS)
        for name in preset.weights:
            value = getattr(self, name)
            _check(name, is_number(value) and value >= 0, "a finite number >= 0", value)
            object.__setattr__(self, name, float(value))
        _check(
            "score_lambda",
            is_number(self.score_lambda) and 0.0 <= self.score_lambda <= 1.0,
            "a number in [0, 1]",
            self.score_lambda,
        )
        _choice("score_normalize", self.score_normalize, SCORE_NORMALIZE)
        _choice("score_reduce", self.score_reduce, SCORE_REDUCE)
        if self.score_reduce == "mean_max" and self.score_normalize != "val_mean":
            raise ValueError(
                "score_reduce: 'mean_max' needs score_normalize: 'val_mean' (the mean and the map maximum are on "
                f"different scales), got score_normalize {self.score_normalize!r}"
            )
        if self.map_sigma is not None:
            _check("map_sigma", is_number(self.map_sigma) and self.map_sigma >= 0, "a number >= 0", self.map_sigma)
        for name in ("base_channels", "max_channels", "ndf", "nz", "anogan_steps"):
            value = getattr(self, name)
            _check(name, is_integer(value) and value >= 1, "an integer >= 1", value)
        _check("max_channels", self.max_channels >= self.base_channels, ">= base_channels", self.max_channels)
        if self.model == "ssagan":
            max_depth = int(math.log2(self.image_size))  # the deepest stage is at least 2x2
            _check(
                "depth",
                is_integer(self.depth) and 2 <= self.depth <= max_depth,
                f"an integer in [2, {max_depth}] at image_size {self.image_size}",
                self.depth,
            )
        _check("attention_kv_pool", self.attention_kv_pool in (1, 2, 4), "1, 2 or 4", self.attention_kv_pool)
        if self.attention_stages is not None:
            stages = tuple(self.attention_stages)
            ok = len(stages) > 0 and all(is_integer(s) and 1 <= s <= self.depth for s in stages)
            _check(
                "attention_stages",
                ok and len(set(stages)) == len(stages),
                f"distinct stage numbers in 1..{self.depth} (or None for all)",
                self.attention_stages,
            )
            object.__setattr__(self, "attention_stages", tuple(sorted(stages)))
        _check(
            "anogan_lambda",
            is_number(self.anogan_lambda) and 0.0 <= self.anogan_lambda <= 1.0,
            "a number in [0, 1]",
            self.anogan_lambda,
        )

    @property
    def stages_with_attention(self) -> tuple[int, ...]:
        """1-based ssagan encoder stages that carry a self-attention block."""
        if not self.attention:
            return ()
        return self.attention_stages if self.attention_stages is not None else tuple(range(1, self.depth + 1))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained and evaluated. Defaults follow the paper (Adam 2e-4, beta1 0.5)."""

    iterations: int = 300
    """Generator/discriminator update steps (the paper trains 10,000)."""
    batch_size: int = 32
    """Training images per step (capped at the number of training images)."""
    lr: float = 2e-4
    """Adam's learning rate for both networks (the paper's 2e-4)."""
    lr_schedule: str = "constant"
    """The learning rate over the run, for both networks: `constant` (the paper's; the official code builds a
    linear-decay scheduler but never steps it), `cosine` (lr x (1 + cos(pi t / iterations)) / 2, down to 0 at the
    end) or `linear` (pix2pix's `linear` policy: constant for the first half, then linearly down to 0). A decay to 0
    makes the final networks, and so the scores, depend much less on the last few steps (docs/studies.md, "The ELPV
    recipe")."""
    beta1: float = 0.5
    """Adam's beta1 (0.5, as DCGAN and the official codes)."""
    beta2: float = 0.999
    """Adam's beta2."""
    input_noise: float = 0.0
    """Std of Gaussian noise added to the generator's input while training (seeded; 0 = off). The official code
    adds an uninitialised tensor here; we make it an explicit option."""
    reinit_d_below: float = 1e-5
    """Re-initialise the discriminator when its loss falls below this (official Skip-GANomaly/GANomaly); 0 = never."""
    threshold_rule: str = "val_quantile"
    """How the decision threshold for accuracy/precision/recall/F1 is chosen, without test labels: `val_quantile`
    (the `threshold_quantile` quantile of the validation normal images' scores) or `val_f1` (the F1-optimal threshold
    on the validation split with its synthetic defects)."""
    threshold_quantile: float = 0.95
    """`val_quantile`: the quantile of the validation normal images' scores used as the threshold (0.95 = a 5%
    false-positive budget on held-out normal images)."""
    eval_every: int = 0
    """Score the validation split every this many iterations and report `val_auc` (0 = only at the end)."""
    log_every: int = 25
    """Report losses to the callback every this many iterations (and check them for NaN/inf)."""
    score_batch_size: int = 64
    """Images per forward pass when scoring (memory only: eval mode makes scores independent of it)."""
    device: str = "auto"
    """`auto` (CUDA if available), `cpu` or `cuda`."""
    channels_last: bool = True
    """NHWC memory layout: 1.4-2x faster convolutions on CPU (measured), neutral to positive on GPU."""
    compute_dtype: str = "fp32"
    """The training step's arithmetic, on CPU and CUDA alike: `fp32`, or `bf16` (bfloat16 autocast over the forward
    passes and losses: convolutions, matmuls and attention in bfloat16; weights, optimiser state and gradients stay
    float32, no loss scaling needed). Scoring always runs in float32, so scores compare across compute dtypes. A CPU
    without AVX-512 BF16 or AMX emulates bfloat16: several times slower than fp32 (`--dry-run` measures it). Whether
    bf16 changes a study's answer is a study of its own (`studies/compute_dtype.yaml`). Replaces the CUDA-only `amp`
    (a study's `train.amp: true` still reads as `bf16`, with a warning)."""
    cpu_memory: str = "keep"
    """How freed tensor memory is treated on the CPU (Linux with glibc; elsewhere a no-op): `keep` holds it for the
    next allocation; `system` is glibc's usual way, which gives every block of 32 MB and more back to the OS when it
    is freed, so that each new one is zeroed page by page on first touch (a 64 px, batch-32 activation of 64
    channels is 33.5 MB). Measured here at 64 px, batch 32: the train step 1.04-1.13x faster with `keep`, for the
    official networks too (docs/performance.md). `keep` holds the process's memory at its peak; nothing computed
    changes."""
    compile: bool = False
    """torch.compile the networks (opt-in: costs compile time, gains vary by device)."""
    num_threads: int = 0
    """torch intra-op threads on CPU; 0 = leave as is (Ray sets it from the trial's CPUs)."""
    deterministic: bool = False
    """Deterministic kernels while training and scoring (`torch.use_deterministic_algorithms`, cuDNN without
    benchmarking, cuBLAS workspace `:4096:8`), so a rerun or a resumed run on the same GPU and software gives the
    same numbers; the process's settings are restored afterwards. Costs GPU speed; on CPU it is cheap and changes no
    score. Strict (not `warn_only`): with `warn_only` torch would keep the non-deterministic attention backward, and
    an op with no deterministic kernel raises rather than varying unnoticed. The one such op here, bilinear
    upsampling's CUDA backward (`up: bilinear`), runs as an equivalent pair of matmuls instead."""

    def __post_init__(self) -> None:
        for name in ("iterations", "batch_size", "log_every", "score_batch_size"):
            value = getattr(self, name)
            _check(name, is_integer(value) and value >= 1, "an integer >= 1", value)
        _check("eval_every", is_integer(self.eval_every) and self.eval_every >= 0, "an integer >= 0", self.eval_every)
        _check(
            "num_threads",
            is_integer(self.num_threads) and self.num_threads >= 0,
            "an integer >= 0",
            self.num_threads,
        )
        _check("lr", is_number(self.lr) and 0 < self.lr < 1, "a number in (0, 1)", self.lr)
        for name in ("beta1", "beta2"):
            _check(
                name,
                is_number(getattr(self, name)) and 0 <= getattr(self, name) < 1,
                "a number in [0, 1)",
                getattr(self, name),
            )
        _check("input_noise", is_number(self.input_noise) and self.input_noise >= 0, "a number >= 0", self.input_noise)
        _check(
            "reinit_d_below",
            is_number(self.reinit_d_below) and self.reinit_d_below >= 0,
            "a number >= 0",
            self.reinit_d_below,
        )
        _choice("threshold_rule", self.threshold_rule, THRESHOLD_RULES)
        _choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _check(
            "threshold_quantile",
            is_number(self.threshold_quantile) and 0 < self.threshold_quantile < 1,
            "a number in (0, 1)",
            self.threshold_quantile,
        )
        _choice("device", self.device, DEVICES)
        _choice("compute_dtype", self.compute_dtype, COMPUTE_DTYPES)
        _choice("cpu_memory", self.cpu_memory, CPU_MEMORY)
        _check("deterministic", isinstance(self.deterministic, bool), "true or false", self.deterministic)

    def to_dict(self) -> dict:
        return asdict(self)

    def settings(self) -> dict:
        """The fields that describe the experiment (every field but `RUNTIME_FIELDS`): what a result row records."""
        return {k: v for k, v in asdict(self).items() if k not in RUNTIME_FIELDS}


def _fixed_by_preset(model: str, name: str) -> str:
    preset = PRESETS[model]
    if name in SWITCHES:
        return (
            f"{name}: the {model} preset is a fixed network ({name}={preset.settings[name]!r}); "
            f"use model='ssagan' to switch components"
        )
    weights = [w for w in preset.fixes if w not in SWITCHES]
    return f"{name}: {model} trains as a plain GAN; {' and '.join(weights)} must be {preset.settings[name]:g}"


def is_power_of_two(n: object) -> bool:
    return is_integer(n) and n > 0 and n & (n - 1) == 0


def is_number(x: object) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def is_integer(x: object) -> bool:
    """An int (not a bool)."""
    return isinstance(x, int) and not isinstance(x, bool)
