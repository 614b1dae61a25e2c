"""ssagan_core: the Skip-Self-Attention GAN (Sun et al. 2025), its baselines, training, scoring, metrics and data.

The model library of ssagan-ablate. It depends on torch, numpy, Pillow and scikit-learn only; orchestration (Ray,
Optuna, Parquet, YAML) lives in `ablation`.
"""

from .blocks import SelfAttention2d, make_attention, make_conv, make_downsample, make_upsample
from .config import CONVS, DOWNS, MODELS, UPS, ModelConfig, TrainConfig
from .data import CategoryData, ImageSet
from .factory import build_discriminator, build_generator, count_parameters
from .metrics import compute_metrics
from .scoring import score_images
from .synthetic import SYNTHETIC_CATEGORIES, SYNTHETIC_DEFECTS, make_synthetic_category
from .training import Progress, TrainResult, train

__all__ = [
    "CONVS",
    "DOWNS",
    "MODELS",
    "SYNTHETIC_CATEGORIES",
    "SYNTHETIC_DEFECTS",
    "UPS",
    "CategoryData",
    "ImageSet",
    "ModelConfig",
    "Progress",
    "SelfAttention2d",
    "TrainConfig",
    "TrainResult",
    "build_discriminator",
    "build_generator",
    "compute_metrics",
    "count_parameters",
    "make_attention",
    "make_conv",
    "make_downsample",
    "make_synthetic_category",
    "make_upsample",
    "score_images",
    "train",
]
