"""`python -m ssagan_core.benchmark`: rates from the real training entry point, models in turns, bad input exits 2."""

from __future__ import annotations

import json

import pytest
import torch

from ssagan_core import benchmark
from ssagan_core.benchmark import images_per_second, main, parse_model


def test_rate_excludes_the_warmup_iterations() -> None:
    history = [{"iteration": 1, "seconds": 10.0}, {"iteration": 2, "seconds": 11.0}, {"iteration": 4, "seconds": 12.0}]
    assert images_per_second(history, warmup=2, batch_size=8) == pytest.approx(2 * 8 / 1.0)


def test_model_specs_take_fields() -> None:
    cfg = parse_model("ssagan attention=false conv=standard base_channels=8 attention_stages=(2,3)", 32)
    assert (cfg.attention, cfg.conv, cfg.base_channels, cfg.image_size) == (False, "standard", 8, 32)
    assert cfg.attention_stages == (2, 3) and parse_model("ssagan attention_stages=null", 32).attention_stages is None


def test_benchmark_prints_one_row_per_model_with_ratios(capsys) -> None:
    tiny = "base_channels=4 max_channels=16 ndf=4 nz=8"
    argv = ["--image-size", "32", "--batch-size", "4", "--iterations", "2", "--warmup", "1", "--rounds", "2"]
    assert main([*argv, "--threads", "1", f"ssagan {tiny}", f"ssagan attention=false {tiny}"]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert [r.split()[0] for r in rows] == ["ssagan", "ssagan"]
    assert float(rows[0].split()[-1]) == 1.0 and float(rows[1].split()[-1]) > 0


def test_every_step_trains_on_the_whole_batch(monkeypatch, capsys) -> None:
    """The rate counts --batch-size images per iteration, so every step must have that many: the benchmark's data
    holds exactly --batch-size training images (a held-out fraction once left 30 of 32, 7 of 8, 3 of 4)."""
    seen, real_train = [], benchmark.train

    def recording_train(model_cfg, train_cfg, data, **kwargs):
        seen.append((len(data.train.images), train_cfg.batch_size))
        return real_train(model_cfg, train_cfg, data, **kwargs)

    monkeypatch.setattr("ssagan_core.benchmark.train", recording_train)
    tiny = "ssagan attention=false base_channels=4 max_channels=16 ndf=4 nz=8"
    for batch in ("4", "8"):
        argv = ["--image-size", "32", "--batch-size", batch, "--iterations", "1", "--warmup", "1", "--rounds", "1"]
        assert main([*argv, "--threads", "1", tiny]) == 0
    assert seen == [(4, 4), (8, 8)]
    capsys.readouterr()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ssagan colour=red"], "error: model 'ssagan colour=red': 'colour=red' is not field=value"),
        (["ssagan attention=maybe"], "error: attention: must be true or false"),
        (["resnet"], "error: model: 'resnet' is not one of"),
        (["--rounds", "0", "ssagan"], "error: --rounds: must be >= 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


FAKE_NETWORKS = """
import torch
from torch import nn

def define_G(opt):
    return nn.Sequential(nn.Conv2d(opt.nc, 4, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(4, opt.nc, 3, 1, 1), nn.Tanh())

class _D(nn.Module):
    def __init__(self, opt):
        super().__init__()
        self.feat = nn.Sequential(nn.Conv2d(opt.nc, 4, 4, 2, 1), nn.LeakyReLU(0.2), nn.AdaptiveAvgPool2d(4))
        self.clas = nn.Sequential(nn.Conv2d(4, 1, 3, 1, 1), nn.Sigmoid())

def define_D(opt):
    return _D(opt)
"""


def _fake_checkout(tmp_path) -> str:
    """A stand-in checkout with the official file layout and `define_G`/`define_D` API."""
    checkout = tmp_path / "skip-ganomaly"
    (checkout / "lib" / "models").mkdir(parents=True)
    (checkout / "lib" / "models" / "networks.py").write_text(FAKE_NETWORKS)
    return str(checkout)


def test_reference_compute_dtypes_and_json(tmp_path, capsys) -> None:
    """`--reference PATH` puts a checkout's networks (here a stand-in with the official file layout and
    `define_G`/`define_D` API) first as the 1.00x row, trained by our skip_ganomaly step; every model runs in every
    `--compute-dtype`; `--json` writes the printed rows with the conditions."""
    checkout = _fake_checkout(tmp_path)
    tiny = "base_channels=4 max_channels=16 ndf=4 nz=8"
    argv = ["--image-size", "32", "--batch-size", "4", "--iterations", "2", "--warmup", "1", "--rounds", "1"]
    out = tmp_path / "bench.json"
    extra = ["--threads", "1", "--compute-dtype", "fp32", "bf16", "--reference", str(checkout), "--json", str(out)]
    assert main([*argv, *extra, f"ssagan attention=false {tiny}"]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    ours = f"ssagan attention=false {tiny}"
    assert [r.rsplit(maxsplit=5)[0].strip() for r in rows] == ["official skip-ganomaly", ours, ours]
    written = json.loads(out.read_text())
    expected = [("official skip-ganomaly", "fp32"), (ours, "fp32"), (ours, "bf16")]
    assert [(r["model"], r["compute_dtype"]) for r in written["rows"]] == expected
    assert written["rows"][0]["ratio"] == 1.0 and all(r["images_per_second"] > 0 for r in written["rows"])
    assert all(r["gflops_generator"] > 0 and r["gflops_discriminator"] > 0 for r in written["rows"])
    assert written["conditions"]["threads"] == 1 and written["conditions"]["reference"] == checkout
    assert written["conditions"]["device"].startswith("cpu") and written["conditions"]["torch"] == torch.__version__


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ssagan", "--compute-dtype", "fp16"], "error: --compute-dtype: 'fp16' is not one of 'fp32', 'bf16'"),
        (["ssagan", "--reference", "/nonexistent"], "error: --reference /nonexistent: no lib/models/networks.py"),
        (["ssagan", "--json", "/nonexistent/b.json"], "error: --json /nonexistent/b.json: its folder does not exist"),
    ],
)
def test_bad_benchmark_options_are_one_line_and_exit_2(argv, message, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_a_reference_checkout_that_does_not_build_is_one_line(tmp_path, capsys) -> None:
    broken = tmp_path / "lib" / "models"
    broken.mkdir(parents=True)
    (broken / "networks.py").write_text("def define_G(opt):\n    raise KeyError('isize')\n")
    assert main(["ssagan", "--reference", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --reference {tmp_path}: its networks do not build (KeyError")
    assert err.count("\n") == 1


def test_cpu_memory_modes_each_have_their_reference(tmp_path, capsys) -> None:
    """`--cpu-memory keep system`: every model in both modes, each mode's ratios against its own reference row."""
    checkout = _fake_checkout(tmp_path)
    tiny = "ssagan attention=false base_channels=4 max_channels=16 ndf=4 nz=8"
    argv = ["--image-size", "32", "--batch-size", "4", "--iterations", "2", "--warmup", "1", "--rounds", "1"]
    out = tmp_path / "bench.json"
    extra = ["--threads", "1", "--cpu-memory", "keep", "system", "--reference", str(checkout), "--json", str(out)]
    assert main([*argv, *extra, tiny]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:3] == ["model", "dtype", "memory"]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["model"], r["cpu_memory"]) for r in rows] == [
        ("official skip-ganomaly", "keep"), (tiny, "keep"), ("official skip-ganomaly", "system"), (tiny, "system"),
    ]  # fmt: skip
    assert rows[0]["ratio"] == 1.0 and rows[2]["ratio"] == 1.0
    assert main([tiny, "--cpu-memory", "pooled"]) == 2
    assert capsys.readouterr().err.startswith("error: --cpu-memory: 'pooled' is not one of 'keep', 'system'")
