"""Study files: validation (one-line errors naming the key, exit 2 from the CLI), overrides, designs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ablation.results.ledger import STUDY_FILE, ResultStore, read_study
from ablation.run.cli import main
from ablation.study.design import trial_specs, variants
from ablation.study.load import StudyDeprecation, StudyError, load_study

from .studies import write_study


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model__atention": True}, "model.atention: unknown key; model takes model, attention"),
        ({"colour": "red"}, "colour: unknown key; a study takes name, description, dataset"),
        ({"train__lr": "fast"}, "train.lr: expected a number, got 'fast' (a string)"),
        ({"train__deterministic": "yes"}, "train.deterministic: expected true/false, got 'yes' (a string)"),
        ({"seeds": "0"}, "seeds: a non-empty list of integers >= 0"),
        ({"grid": {"model.atention": [True]}}, "grid.model.atention: unknown factor; factors are model.model"),
        ({"grid": {}}, "grid: a non-empty mapping of factor -> list of values"),
        ({"grid": {"model.attention": []}}, "grid.model.attention: a non-empty list of values"),
        ({"dataset__kind": "mvtec"}, "dataset.root: required for dataset kind 'mvtec'"),
        ({"dataset__kind": "imagenet"}, "dataset.kind: 'imagenet' is not one of 'synthetic', 'mvtec'"),
        ({"dataset__val_min_images": -1}, "dataset.val_min_images: must be an integer >= 0, got -1"),
        ({"dataset__val_min_images": 2.5}, "dataset.val_min_images: expected an integer, got 2.5"),
        ({"model__conv": "depthwise"}, "model.conv: 'depthwise' is not one of 'dsc', 'standard'"),
        ({"grid": {"model.up": ["bilinear", "nearest"]}}, "model.up: 'nearest' is not one of"),
        ({"resources__cpus_per_trial": 0}, "resources.cpus_per_trial: a number > 0"),
        ({"search": {"space": {"train.lr": {"log_uniform": [1e-5, 1e-3]}}}}, "grid, loco, search: a study has one"),
        ({"name": "bad name!"}, "name: required, letters, digits"),
    ],
)
def test_bad_study_files_exit_2_naming_the_key(tmp_path, capsys, changes: dict, message: str) -> None:
    path = write_study(tmp_path / "study.yaml", **changes)
    with pytest.raises(StudyError, match="^" + str(path).replace(".", r"\.") + ": "):
        load_study(path)
    assert main([str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bad_yaml_syntax(tmp_path, capsys) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\ngrid:\n  model.attention: [true, false\n")
    assert main([str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "invalid YAML at line" in err and "Traceback" not in err


def test_missing_dataset_root_on_disk(tmp_path, capsys) -> None:
    path = write_study(tmp_path / "s.yaml", dataset={"kind": "folder", "root": str(tmp_path / "nowhere")})
    assert main([str(path), "--dry-run"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert str(tmp_path / "nowhere") in err and "Traceback" not in err


def test_environment_variables_in_the_root(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DATA_HOME", "/data")
    study = load_study(write_study(tmp_path / "s.yaml", dataset__kind="folder", dataset__root="${DATA_HOME}/mine"))
    assert study.dataset["root"] == "/data/mine"
    monkeypatch.delenv("DATA_HOME")
    with pytest.raises(StudyError, match=r"dataset\.root: environment variable DATA_HOME is not set"):
        load_study(tmp_path / "s.yaml")


def test_set_overrides_any_key_as_yaml(tmp_path) -> None:
    path = write_study(tmp_path / "s.yaml")
    study = load_study(
        path,
        [
            "dataset.categories=[nut, wood]",
            "train.lr=1.0e-3",
            "grid.model.conv=[dsc, standard]",
            "seeds=[3]",
        ],
    )
    assert study.dataset["categories"] == ("nut", "wood") and study.train["lr"] == 1e-3 and study.seeds == (3,)
    assert study.grid == {"model.attention": (True, False), "model.conv": ("dsc", "standard")}
    with pytest.raises(StudyError, match=r"--set 'oops': expected KEY=VALUE"):
        load_study(path, ["oops"])


def test_grid_design_is_the_cross_product(tmp_path) -> None:
    study = load_study(
        write_study(tmp_path / "s.yaml", grid={"model.attention": [True, False], "model.conv": ["dsc", "standard"]})
    )
    names = [v.name for v in variants(study)]
    assert names == [
        "attention=true,conv=dsc",
        "attention=true,conv=standard",
        "attention=false,conv=dsc",
        "attention=false,conv=standard",
    ]
    specs = trial_specs(study, ("nut", "wood"))
    assert len(specs) == 4 * 2 * 2 and len({s.key for s in specs}) == len(specs)
    assert specs[0].key == "attention=true,conv=dsc|seed=0|nut"
    assert specs[0].model.attention and specs[0].model.conv == "dsc" and specs[0].model.image_size == 32


def test_leave_one_component_out(tmp_path) -> None:
    loco = {"model.attention": False, "model.conv": "standard", "model.down": "strided", "model.up": "transposed"}
    study = load_study(write_study(tmp_path / "s.yaml", grid=None, loco=loco))
    vs = variants(study)
    assert [v.name for v in vs] == ["base", "attention=false", "conv=standard", "down=strided", "up=transposed"]
    base = trial_specs(study, ("nut",))[0].model
    assert (base.attention, base.conv, base.down, base.up) == (True, "dsc", "maxpool", "bilinear")


def test_baseline_variants_drop_the_base_switches(tmp_path) -> None:
    study = load_study(
        write_study(tmp_path / "s.yaml", model__attention=True, grid={"model.model": ["ssagan", "skip_ganomaly"]})
    )
    a, b = (s.model for s in trial_specs(study, ("nut",))[::2])
    assert a.model == "ssagan" and a.attention and (a.w_adv, a.w_ctx) == (0.5, 0.3)
    assert b.model == "skip_ganomaly" and not b.attention and (b.w_adv, b.w_ctx) == (1.0, 50.0)


def test_the_old_preset_key_still_runs_with_a_one_line_warning(tmp_path, capsys) -> None:
    """`model.name` became `model.model` (the config field and the Parquet column's name); old files still run."""
    path = write_study(tmp_path / "s.yaml", model__name="ssagan", grid={"model.name": ["ssagan", "skip_ganomaly"]})
    with pytest.warns(StudyDeprecation, match=r"model\.name is now") as caught:
        study = load_study(path)
    assert len(caught) == 2  # the section key and the grid factor
    assert study.model["model"] == "ssagan" and "name" not in study.model
    assert study.grid == {"model.model": ("ssagan", "skip_ganomaly")}
    assert [v.name for v in variants(study)] == ["model=ssagan", "model=skip_ganomaly"]  # as before the rename
    assert main([str(path), "--dry-run", "--out", str(tmp_path / "out")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2 and all("model.model" in w and "Traceback" not in w for w in warnings)


def test_the_saved_study_is_the_validated_study_and_runs_again(tmp_path) -> None:
    """The runner saves the validated study beside the results; the report reads it back without validating, and the
    file is itself a study file that validates to the same study."""
    search = {
        "sampler": "tpe",
        "trials": 5,
        "space": {"train.lr": {"log_uniform": [1e-5, 1e-3]}, "model.depth": {"int": [2, 4]}},
    }
    for changes in ({}, {"grid": None, "loco": {"model.attention": False}}, {"grid": None, "search": search}):
        study = load_study(write_study(tmp_path / "s.yaml", **changes), ["train.lr=0.001"])
        out = tmp_path / study.design
        ResultStore(out).save_study(study)
        assert read_study(out) == study
        assert load_study(out / STUDY_FILE) == study
    assert read_study(tmp_path / "nowhere") is None


def test_search_study_validation(tmp_path) -> None:
    ok = load_study(
        write_study(
            tmp_path / "s.yaml",
            grid=None,
            search={"sampler": "tpe", "trials": 5, "space": {"train.lr": {"log_uniform": [1e-5, 1e-3]}}},
        )
    )
    assert ok.design == "search" and ok.search.space["train.lr"].kind == "log_uniform"
    bad = write_study(
        tmp_path / "b.yaml", grid=None, search={"metric": "auc", "space": {"train.lr": {"choice": [1e-3]}}}
    )
    with pytest.raises(StudyError, match=r"search\.metric: must be a validation metric"):
        load_study(bad)
    asha = write_study(
        tmp_path / "c.yaml", grid=None, search={"scheduler": "asha", "space": {"train.lr": {"choice": [1e-3]}}}
    )
    with pytest.raises(StudyError, match=r"search\.scheduler: asha .* set train\.eval_every"):
        load_study(asha)


def test_dry_run_prints_the_trials_and_writes_nothing(tmp_path, capsys) -> None:
    path = write_study(tmp_path / "s.yaml")
    assert main([str(path), "--dry-run", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "attention=true|seed=0|nut" in out and "attention=false|seed=1|nut" in out
    assert not (tmp_path / "out").exists()


SHIPPED = Path(__file__).resolve().parents[1] / "studies"
# The README's "Shipped studies" table: trials per file (for search studies, trials per category x categories).
SHIPPED_TRIALS = {
    "smoke": 8,
    "attention": 16,
    "conv": 16,
    "downsampling": 16,
    "upsampling": 16,
    "loss_weights": 24,
    "factorial": 64,
    "loco": 30,
    "elpv_attention": 14,  # worst case: 7 seeds x attention on/off, mono only
    "elpv_attention_poly": 14,  # the same on poly
    "elpv_poly_iterations": 6,
    "attention_adaptive": 40,  # adaptive seeds: the worst case (every variant at 10 seeds)
    "score_normalize": 32,  # adaptive seeds: the worst case (every variant at 8 seeds)
    "elpv_recipe": 24,
    "compute_dtype": 32,  # adaptive seeds: the worst case (both precisions at 8 seeds)
}


@pytest.mark.parametrize("path", sorted(SHIPPED.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_study_validates(path: Path, monkeypatch, tmp_path) -> None:
    """Each file in studies/ parses, every variant's configs build, and the trial count matches the README's table.
    The paper studies read their root from the environment; any path will do for validation."""
    monkeypatch.setenv("MVTEC_ROOT", str(tmp_path))
    monkeypatch.setenv("KOLEKTOR_ROOT", str(tmp_path))
    study = load_study(path)
    assert study.name == path.stem and study.description
    if study.search is not None:
        assert study.search.trials * len(study.dataset["categories"]) == 16  # hpo
    elif path.stem in SHIPPED_TRIALS:
        assert len(trial_specs(study, study.dataset["categories"])) == SHIPPED_TRIALS[path.stem]
    else:  # the paper protocols: all four models, the paper's 10,000 iterations
        assert {v.model["model"] for v in variants(study)} == {"anogan", "ganomaly", "skip_ganomaly", "ssagan"}
        assert study.train["iterations"] == 10_000


def test_the_committed_example_report_is_not_a_shipped_studys_output_folder() -> None:
    """The README's example report exists, and sits where no shipped study writes by default: otherwise the README's
    main command would find results already there on a fresh clone and refuse to start."""
    readme = (SHIPPED.parent / "README.md").read_text()
    folder = re.search(r"\]\((reports/[^)]+)/report\.md\)", readme).group(1)
    assert (SHIPPED.parent / folder / "report.md").is_file() and (SHIPPED.parent / folder / "trials.parquet").is_file()
    assert Path(folder).name not in {load_study(p).name for p in SHIPPED.glob("*.yaml") if "paper" not in p.stem}


def test_the_old_amp_key_reads_as_compute_dtype_with_a_warning(tmp_path) -> None:
    """`train.amp` (bfloat16 on CUDA only) became `train.compute_dtype: fp32 | bf16` (both devices): true reads as bf16,
    false as fp32, as a section key and as a factor; anything else is refused under the new name."""
    path = write_study(tmp_path / "s.yaml", train__amp=True, grid={"train.amp": [False, True]})
    with pytest.warns(StudyDeprecation, match=r"train\.amp is now train\.compute_dtype") as caught:
        study = load_study(path)
    assert len(caught) == 2
    assert study.train["compute_dtype"] == "bf16" and "amp" not in study.train
    assert study.grid == {"train.compute_dtype": ("fp32", "bf16")}
    assert {s.train.compute_dtype for s in trial_specs(study, ("nut",))} == {"fp32", "bf16"}
    refused = r"train\.compute_dtype.*'maybe' is not one of"
    with pytest.warns(StudyDeprecation), pytest.raises(StudyError, match=refused):
        load_study(write_study(tmp_path / "bad.yaml", train__amp="maybe"))
