"""`python -m ssagan_core.benchmark`: rates from the real training entry point, models in turns, bad input exits 2."""

from __future__ import annotations

import pytest

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
