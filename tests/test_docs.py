"""The reference pages in docs/ match the code: every study key, every Parquet column and every command-line option is
documented, the generated tables are current, and the README's links resolve."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pandas as pd

from ablation.docs import field_docs, update_pages
from ablation.report.cli import parser as report_parser
from ablation.results import rows
from ablation.run.cli import parser as run_parser
from ablation.run.context import RunContext
from ablation.study.design import trial_specs
from ablation.study.load import load_study
from ablation.study.schema import AdaptiveSeeds, Analysis, Resources, Search, Study
from ssagan_core.config import RUNTIME_FIELDS, ModelConfig, TrainConfig
from ssagan_core.data import KINDS, DataConfig
from ssagan_core.training import train

from .helpers import random_category
from .studies import write_study

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _text(page: str) -> str:
    return (DOCS / page).read_text()


def test_the_generated_tables_are_current() -> None:
    stale = update_pages(write=False)
    assert not stale, f"out of date: {[p.name for p in stale]}; run `python -m ablation.docs`"


def test_every_study_key_is_documented_with_its_meaning() -> None:
    text = _text("study-files.md")
    sections = {
        "": Study,
        "dataset.": DataConfig,
        "model.": ModelConfig,
        "train.": TrainConfig,
        "search.": Search,
        "resources.": Resources,
        "analysis.": Analysis,
        "adaptive_seeds.": AdaptiveSeeds,
    }
    for prefix, cls in sections.items():
        docs = field_docs(cls)
        for f in dataclasses.fields(cls):
            if f.name in RUNTIME_FIELDS or (cls is ModelConfig and f.name == "image_size"):
                continue
            assert f"| `{prefix}{f.name}` |" in text, f"{prefix}{f.name} is missing from docs/study-files.md"
            assert docs.get(f.name), f"{cls.__name__}.{f.name} has no docstring"


def test_every_parquet_column_is_documented(tmp_path) -> None:
    """A real trial's rows (trained, then turned into rows by the runner's code): every column is in docs/results.md,
    a setting column as its study key in docs/study-files.md; the row's columns come in the documented order."""
    study = load_study(write_study(tmp_path / "s.yaml", seeds=[0], grid={"model.attention": [True]}))
    (spec,) = trial_specs(study, ("nut",))
    data = random_category(32)
    result = train(spec.model, spec.train, data, seed=0)
    row, scores, history = rows.outcome(spec, RunContext.of(study), result, data, "t0", node="n", started_at="now")
    results, keys = _text("results.md"), _text("study-files.md")
    settings = [f.name for f in dataclasses.fields(ModelConfig)] + list(TrainConfig().settings())
    for column in settings:
        assert f"`model.{column}`" in keys or f"`train.{column}`" in keys or f"`{column}`" in results, column
    for column in row:
        assert column in settings or f"`{column}`" in results, f"trials.parquet column {column} is not documented"
    finals = [c for c in row if c.startswith("final_")]
    assert finals and all(f"`{c}`" in results for c in finals)
    assert sorted(rows.settings(spec)) == sorted(settings)
    documented = [*rows.IDENTITY, *rows.settings(spec), *rows.OUTCOME, *rows.METRICS, *finals, *rows.PROVENANCE]
    documented += list(rows.RESOURCES)
    assert list(row) == documented
    assert list(scores.columns) == list(rows.SCORE_COLUMNS)
    for frame in (scores, history):
        for column in frame.columns:
            assert f"`{column}`" in results, f"{column} is not documented"
    assert set(pd.DataFrame([row]).columns) == set(row)


def test_every_command_line_option_is_documented() -> None:
    text = _text("running.md")
    for parser in (run_parser(), report_parser()):
        for action in parser._actions:
            for name in action.option_strings or [action.dest]:
                if name not in ("-h", "--help"):
                    assert re.search(rf"`{re.escape(name)}\b", text), f"{parser.prog} {name} is not in docs/running.md"


def test_every_dataset_kind_has_a_section() -> None:
    text = _text("datasets.md")
    for kind in KINDS:
        assert f"## `{kind}`" in text


def test_the_readme_is_the_front_door() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 120, "the README is the front door; reference material belongs in docs/"
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    assert any(link.startswith("docs/") for link in links)
    for link in links:
        if "://" not in link:
            assert (ROOT / link).exists(), f"README links to {link}, which does not exist"
    for page in DOCS.glob("*.md"):
        assert f"docs/{page.name}" in readme, f"the README does not point to docs/{page.name}"
    assert "./setup && .venv/bin/python -m ablation.run studies/attention.yaml" in readme
    assert "./setup && .venv/bin/python -m pytest --run-slow" in readme


def test_docs_use_the_current_key_names() -> None:
    """The preset key is `model.model` everywhere a user reads (the old `model.name` only in the renamed-keys table)."""
    for page in [*DOCS.glob("*.md"), ROOT / "README.md", *(ROOT / "studies").glob("*.yaml")]:
        text = page.read_text()
        if page.name == "study-files.md":
            text = text.split("## Renamed keys")[0]
        assert "model.name" not in text, f"{page.name} still says model.name"
