"""The bad-input table: malformed study files, options and datasets, each through the real entry point.

Every case must end with exit status 2 and one line on stderr that names the problem, no traceback, and nothing
written: no output folder, nothing in the dataset cache. A case is `name: (make, says)`: `make(tmp)` builds the bad
input under `tmp` and returns the runner's arguments (the output folder is added), `says` is a fragment of the line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ablation.run import cli
from ablation.run.cli import main

from .studies import write_study


def _study(tmp: Path, **changes) -> list[str]:
    return [str(write_study(tmp / "study.yaml", **changes))]


def _text(tmp: Path, text: str) -> list[str]:
    (tmp / "study.yaml").write_text(text)
    return [str(tmp / "study.yaml")]


def _image(path: Path, h: int = 32, w: int = 32, level: int = 40) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), level, np.uint8)).save(path)
    return path


def _parts(tmp: Path) -> Path:
    """A plain-folder dataset (Skip-GANomaly's layout) with masks, valid until a case breaks it."""
    root = tmp / "parts"
    for i in range(6):
        _image(root / "train" / "0.normal" / f"n{i}.png", level=30 + i)
    _image(root / "test" / "0.normal" / "n9.png")
    for i in range(2):
        _image(root / "test" / "1.abnormal" / f"a{i}.png", level=200)
        mask = np.zeros((32, 32), np.uint8)
        mask[8:16, 8:16] = 255
        mask_path = root / "ground_truth" / "1.abnormal" / f"a{i}.png"
        mask_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask).save(mask_path)
    return root


def _on_parts(tmp: Path, breaks: Callable[[Path], object]) -> list[str]:
    root = _parts(tmp)
    breaks(root)
    dataset = {"kind": "folder", "root": str(root), "image_size": 32, "cache_dir": str(tmp / "cache")}
    return _study(tmp, dataset=dataset)


def _symlink_loop(root: Path) -> None:
    """Two links that point at each other, in place of a test folder (the loader would have found it missing)."""
    abnormal = root / "test" / "1.abnormal"
    for p in abnormal.iterdir():
        p.unlink()
    abnormal.rmdir()
    abnormal.symlink_to(root / "test" / "other")
    (root / "test" / "other").symlink_to(abnormal)


def _dangling_image(root: Path) -> None:
    (root / "train" / "0.normal" / "n9.png").symlink_to(root / "gone.png")


def _alias_bomb(tmp: Path) -> list[str]:
    """Billion laughs: nine levels of nine aliases, 9^9 = 387 million strings if expanded."""
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
    return _text(tmp, "name: bomb\n" + "\n".join(lines) + "\n")


def _huge(tmp: Path) -> list[str]:
    path = tmp / "study.yaml"
    with path.open("w") as f:
        f.write("name: huge\ndescription: |\n")
        line = "  " + "x" * 1022 + "\n"
        for _ in range(100 * 1024):  # 100 MB
            f.write(line)
    return [str(path)]


def _resume_other(tmp: Path) -> list[str]:
    """`--resume` into an output folder that holds another study's results (made by a real run)."""
    other = write_study(tmp / "other.yaml", name="other", seeds=[0], grid={"model.attention": [False]})
    assert main([str(other), "--out", str(tmp / "out"), "--serial", "--no-report"]) == 0
    return [*_study(tmp), "--resume"]


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:60])


def _root_file(tmp: Path) -> list[str]:
    (tmp / "parts.tar").write_bytes(b"")
    dataset = {"kind": "folder", "root": str(tmp / "parts.tar"), "image_size": 32, "cache_dir": str(tmp / "cache")}
    return _study(tmp, dataset=dataset)


BAD: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    # study files: structure and types
    "unknown top-level key": (lambda t: _study(t, colour="red"), "colour: unknown key"),
    "unknown model key": (lambda t: _study(t, model__atention=True), "model.atention: unknown key"),
    "wrong type": (lambda t: _study(t, train__lr="fast"), "train.lr: expected a number, got 'fast'"),
    "bool for an int": (lambda t: _study(t, train__iterations=True), "train.iterations"),
    "out of range lr": (lambda t: _study(t, train__lr=-0.1), "train.lr"),
    "negative loss weight": (lambda t: _study(t, model__w_ctx=-1.0), "w_ctx"),
    "image size not a power of two": (lambda t: _study(t, dataset__image_size=48), "image_size"),
    "image size too small for the depth": (
        lambda t: _study(t, dataset__image_size=16, model__depth=5),
        "depth: must be an integer in [2, 4] at image_size 16",
    ),
    "unknown switch value": (lambda t: _study(t, model__conv="depthwise"), "model.conv: 'depthwise' is not one of"),
    "empty grid": (lambda t: _study(t, grid={}), "grid: a non-empty mapping"),
    "empty factor": (lambda t: _study(t, grid={"model.attention": []}), "grid.model.attention: a non-empty list"),
    "unknown factor": (lambda t: _study(t, grid={"model.atention": [True]}), "grid.model.atention: unknown factor"),
    "duplicate factor": (
        lambda t: _text(t, "name: dup\ngrid:\n  model.attention: [true, false]\n  model.attention: [true]\n"),
        "grid: model.attention given twice",
    ),
    "duplicate top-level key": (
        lambda t: _text(t, "name: a\nseeds: [0]\nseeds: [1]\n"),
        "seeds: given twice (lines 2 and 3)",
    ),
    "two designs": (
        lambda t: _study(t, loco={"model.attention": False}),
        "grid, loco, search: a study has one design",
    ),
    "unknown sampler": (
        lambda t: _study(t, grid=None, search={"sampler": "magic", "space": {"train.lr": {"choice": [1e-4]}}}),
        "search.sampler: 'magic' is not one of",
    ),
    "search on a test metric": (
        lambda t: _study(t, grid=None, search={"metric": "auc", "space": {"train.lr": {"choice": [1e-4]}}}),
        "search.metric: must be a validation metric",
    ),
    "bad seeds": (lambda t: _study(t, seeds=[-1]), "seeds: a non-empty list of integers >= 0"),
    "bad name": (lambda t: _study(t, name="bad name!"), "name: required, letters, digits"),
    "adaptive max below initial": (
        lambda t: _study(t, seeds=None, adaptive_seeds={"initial": 4, "max": 2}),
        "adaptive_seeds.max",
    ),
    "min_effect <= 0": (lambda t: _study(t, analysis={"min_effect": 0}), "analysis.min_effect"),
    "alpha outside (0, 0.5)": (lambda t: _study(t, analysis={"alpha": 0.7}), "analysis.alpha: a probability"),
    "a budget that cannot fit one round": (
        lambda t: _study(t, seeds=None, adaptive_seeds={"initial": 3, "max": 5, "max_trials": 2}),
        "adaptive_seeds.max_trials",
    ),
    "zero cpus per trial": (lambda t: _study(t, resources={"cpus_per_trial": 0}), "resources.cpus_per_trial"),
    "cpus per trial above the machine": (
        lambda t: _study(t, resources={"cpus_per_trial": 4096}),
        "resources.cpus_per_trial: 4096 CPUs per trial",
    ),
    "fractional GPUs without a GPU": (
        lambda t: _study(t, resources={"cpus_per_trial": 1, "gpus_per_trial": 0.25}),
        "resources.gpus_per_trial: 0.25 GPUs per trial",
    ),
    # study files: the file itself
    "YAML syntax error": (lambda t: _text(t, "name: x\ngrid:\n  model.attention: [true, false\n"), "invalid YAML"),
    "YAML alias bomb": (_alias_bomb, "aliases"),
    "100 MB study file": (_huge, "MB; a study file is at most 1 MB"),
    "not a mapping": (lambda t: _text(t, "- a\n- b\n"), "a study file is a mapping"),
    "missing study file": (lambda t: [str(t / "nowhere.yaml")], "cannot read the study file"),
    "a folder as the study file": (lambda t: [str(t)], "cannot read the study file"),
    # options
    "unknown option": (lambda t: [*_study(t), "--colour", "red"], "unrecognized arguments: --colour red"),
    "option without its value": (lambda t: [*_study(t), "--set"], "--set: expected one argument"),
    "bad --set": (lambda t: [*_study(t), "--set", "oops"], "--set 'oops': expected KEY=VALUE"),
    "--set of an unknown key": (lambda t: [*_study(t), "--set", "train.speed=3"], "train.speed: unknown key"),
    "--num-cpus not a number": (lambda t: [*_study(t), "--num-cpus", "many"], "--num-cpus: invalid int value"),
    "--serial search": (
        lambda t: [*_study(t, grid=None, search={"space": {"train.lr": {"choice": [1e-4]}}}), "--serial"],
        "--serial runs grid and loco studies",
    ),
    "--resume into another study's results": (_resume_other, "holds results of study other, not tiny"),
    # datasets
    "unknown dataset kind": (lambda t: _study(t, dataset__kind="imagenet"), "dataset.kind: 'imagenet' is not one of"),
    "missing dataset root": (
        lambda t: _study(t, dataset={"kind": "folder", "root": str(t / "nowhere"), "image_size": 32}),
        "nowhere",
    ),
    "dataset root is a file": (_root_file, "is not a folder"),
    "empty train folder": (
        lambda t: _on_parts(t, lambda r: [p.unlink() for p in (r / "train" / "0.normal").iterdir()]),
        "no images",
    ),
    "corrupt image": (
        lambda t: _on_parts(t, lambda r: (r / "train" / "0.normal" / "n2.png").write_bytes(b"not a PNG")),
        "n2.png",
    ),
    "truncated image": (
        lambda t: _on_parts(t, lambda r: _truncate(r / "test" / "1.abnormal" / "a1.png")),
        "a1.png",
    ),
    "mask of the wrong size": (
        lambda t: _on_parts(t, lambda r: _image(r / "ground_truth" / "1.abnormal" / "a0.png", 30, 32)),
        "mask is 32x30 px",
    ),
    "symlink loop in the dataset": (lambda t: _on_parts(t, _symlink_loop), "1.abnormal: a symbolic link that loops"),
    "image that is a dangling link": (
        lambda t: _on_parts(t, _dangling_image),
        "n9.png: a symbolic link that points nowhere",
    ),
}


def test_the_table_has_at_least_30_cases() -> None:
    assert len(BAD) >= 30


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    case: str, tmp_path: Path, capsys, monkeypatch, ray_session
) -> None:
    make, says = BAD[case]
    argv = make(tmp_path)

    def no_trials(*args, **kwargs) -> int:
        raise AssertionError(f"{case}: the study passed every check and would run its trials")

    monkeypatch.setattr(cli, "_run_trials", no_trials)
    before = _snapshot(tmp_path)
    capsys.readouterr()
    status = main([*argv, "--out", str(tmp_path / "out"), "--no-report"])
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert says in " ".join(err.split()), err
    assert _snapshot(tmp_path) == before, "something was written"


def _snapshot(tmp: Path) -> dict[str, int]:
    """Every path under `tmp` (the dataset cache and the output folder included) with its size and mtime."""
    return {str(p.relative_to(tmp)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in tmp.rglob("*")}
