"""Config validation: bad values name the field and list the allowed ones; presets fill their own defaults."""

from __future__ import annotations

import dataclasses

import pytest

from ssagan_core import ModelConfig, TrainConfig


def test_paper_defaults() -> None:
    cfg = ModelConfig()
    assert (cfg.model, cfg.attention, cfg.conv, cfg.down, cfg.up) == ("ssagan", True, "dsc", "maxpool", "bilinear")
    assert (cfg.w_adv, cfg.w_ctx, cfg.w_lat, cfg.score_lambda) == (0.5, 0.3, 0.2, 0.9)
    assert cfg.score_normalize == "none"  # the paper's raw mix
    assert cfg.stages_with_attention == (1, 2, 3, 4, 5)
    t = TrainConfig()
    assert (t.lr, t.beta1, t.input_noise) == (2e-4, 0.5, 0.0)


@pytest.mark.parametrize("model", ["skip_ganomaly", "ganomaly"])
def test_baseline_presets(model: str) -> None:
    cfg = ModelConfig(model=model, image_size=32)
    assert (cfg.attention, cfg.conv, cfg.down, cfg.up) == (False, "standard", "strided", "transposed")
    assert (cfg.w_adv, cfg.w_ctx, cfg.w_lat) == (1.0, 50.0, 1.0)
    assert ModelConfig(model="anogan").w_ctx == 0.0


def test_variants_are_made_by_replace() -> None:
    base = ModelConfig()
    variant = dataclasses.replace(base, attention=False)
    assert base.attention and not variant.attention
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.attention = False  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "vae"}, "model: 'vae' is not one of 'ssagan', 'skip_ganomaly', 'ganomaly', 'anogan'"),
        ({"conv": "depthwise"}, "conv: 'depthwise' is not one of 'dsc', 'standard'"),
        ({"down": "avgpool"}, "down: 'avgpool' is not one of 'maxpool', 'strided'"),
        ({"up": "nearest"}, "up: 'nearest' is not one of 'bilinear', 'transposed'"),
        ({"attention": "yes"}, "attention: must be true or false"),
        ({"image_size": 48}, "image_size: must be a power of two >= 16"),
        ({"w_adv": -1.0}, "w_adv: must be a finite number >= 0"),
        ({"w_lat": float("nan")}, "w_lat: must be a finite number >= 0"),
        ({"score_lambda": 1.5}, "score_lambda: must be a number in [0, 1]"),
        ({"depth": 7}, "depth: must be an integer in [2, 6] at image_size 64"),
        ({"attention_stages": (0, 2)}, "attention_stages: must be distinct stage numbers in 1..5"),
        ({"attention_kv_pool": 3}, "attention_kv_pool: must be 1, 2 or 4"),
        ({"score_normalize": "test_max"}, "score_normalize: 'test_max' is not one of 'none', 'val_mean'"),
        ({"score_reduce": "median"}, "score_reduce: 'median' is not one of 'mean', 'max'"),
        ({"score_reduce": "mean_max"}, "score_reduce: 'mean_max' needs score_normalize: 'val_mean'"),
        ({"model": "skip_ganomaly", "attention": True}, "attention: the skip_ganomaly preset is a fixed network"),
        ({"model": "anogan", "w_ctx": 1.0}, "w_ctx: anogan trains as a plain GAN"),
    ],
)
def test_bad_model_values_name_the_field(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match="^" + _escape(message)):
        ModelConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"iterations": 0}, "iterations: must be an integer >= 1"),
        ({"lr": 0.0}, "lr: must be a number in (0, 1)"),
        ({"device": "tpu"}, "device: 'tpu' is not one of 'auto', 'cpu', 'cuda'"),
        ({"threshold_rule": "test_f1"}, "threshold_rule: 'test_f1' is not one of 'val_quantile', 'val_f1'"),
        ({"lr_schedule": "step"}, "lr_schedule: 'step' is not one of 'constant', 'cosine', 'linear'"),
        ({"threshold_quantile": 1.0}, "threshold_quantile: must be a number in (0, 1)"),
        ({"input_noise": -0.1}, "input_noise: must be a number >= 0"),
        ({"deterministic": "yes"}, "deterministic: must be true or false, got 'yes'"),
        ({"deterministic": 1}, "deterministic: must be true or false, got 1"),
        ({"cpu_memory": "pooled"}, "cpu_memory: 'pooled' is not one of 'keep', 'system'"),
    ],
)
def test_bad_train_values_name_the_field(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match="^" + _escape(message)):
        TrainConfig(**kwargs)


def test_attention_stages_are_normalised() -> None:
    cfg = ModelConfig(image_size=128, attention_stages=(4, 2, 3), attention_kv_pool=2)
    assert cfg.attention_stages == (2, 3, 4) and cfg.stages_with_attention == (2, 3, 4)
    assert ModelConfig(attention=False, attention_stages=(1,)).stages_with_attention == ()


def _escape(text: str) -> str:
    import re

    return re.escape(text)
