"""`python -m ablation.docs [--check]`: write the reference tables of `docs/*.md` from the code they describe.

Each generated table sits between `<!-- generated: NAME -->` and `<!-- end generated -->` in a hand-written page; the
text around it is left alone. The sources: the config dataclasses' field docstrings (study-file keys), the preset
table, the paper's protocol (`ablation/report/paper_tables.yaml`), the row schema of `ablation.results.rows` (Parquet
columns), the command-line parsers, and the package tree with each module's docstring and the imports between the
folders. `--check` writes nothing and exits 1 when a page is out of date (a test runs it, so a new config field or
Parquet column cannot ship undocumented).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import re
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BLOCK = re.compile(r"(<!-- generated: ([\w-]+) -->\n)(.*?)(<!-- end generated -->)", re.S)
ROOMS = ("study", "run", "results", "report")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ablation.docs", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a page is out of date")
    args = parser.parse_args(argv)
    stale = update_pages(write=not args.check)
    for page in stale:
        print(f"{'out of date' if args.check else 'updated'}: {page.relative_to(ROOT)}")
    if args.check and stale:
        print("run `python -m ablation.docs` to update them", file=sys.stderr)
        return 1
    return 0


def update_pages(write: bool = True) -> list[Path]:
    """Regenerate every block of every page; return the pages whose text changed (written only if `write`)."""
    generators = blocks()
    stale = []

    def fill(match: re.Match) -> str:
        name = match.group(2)
        if name not in generators:
            raise KeyError(f"unknown generated block {name!r}; known: {', '.join(generators)}")
        return f"{match.group(1)}{generators[name]().rstrip()}\n{match.group(4)}"

    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text()
        new = BLOCK.sub(fill, text)
        if new != text:
            stale.append(page)
            if write:
                page.write_text(new)
    return stale


def field_docs(cls: type) -> dict[str, str]:
    """Field name -> its docstring (the string literal under the field in the class body), whitespace collapsed."""
    source = Path(sys.modules[cls.__module__].__file__).read_text()
    body = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == cls.__name__).body
    docs = {}
    for node, after in zip(body, [*body[1:], None], strict=True):
        if isinstance(node, ast.AnnAssign) and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
            docs[node.target.id] = " ".join(str(after.value.value).split())
    return docs


# --- the blocks -----------------------------------------------------------------------------------------------


def blocks() -> dict[str, Callable[[], str]]:
    """Block name -> the function that writes it (the imports wait until a page is written)."""
    from ssagan_core.config import RUNTIME_FIELDS, ModelConfig, TrainConfig
    from ssagan_core.data import DataConfig

    from .study.schema import AdaptiveSeeds, Analysis, Resources, Search, Study

    return {
        "study-keys": lambda: _fields(Study, key=lambda n: f"`{n}`", defaults=False),
        "dataset-keys": lambda: _fields(DataConfig, key=lambda n: f"`dataset.{n}`"),
        "model-keys": lambda: _fields(ModelConfig, key=lambda n: f"`model.{n}`", skip=("image_size",)),
        "train-keys": lambda: _fields(TrainConfig, key=lambda n: f"`train.{n}`", skip=RUNTIME_FIELDS),
        "search-keys": lambda: _fields(Search, key=lambda n: f"`search.{n}`"),
        "resources-keys": lambda: _fields(Resources, key=lambda n: f"`resources.{n}`"),
        "analysis-keys": lambda: _fields(Analysis, key=lambda n: f"`analysis.{n}`"),
        "adaptive-seeds-keys": lambda: _fields(AdaptiveSeeds, key=lambda n: f"`adaptive_seeds.{n}`"),
        "renamed-keys": _renamed,
        "presets": _presets,
        "paper-protocol": _paper_protocol,
        "trials-columns": _trials_columns,
        "scores-columns": lambda: _columns("scores"),
        "history-columns": lambda: _columns("history"),
        "run-options": lambda: _options("ablation.run.cli"),
        "report-options": lambda: _options("ablation.report.cli"),
        "tree": _tree,
        "import-graph": _import_graph,
    }


def _fields(cls: type, key: Callable[[str], str], skip: tuple = (), defaults: bool = True) -> str:
    docs = field_docs(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        if f.name not in docs:
            raise ValueError(f"{cls.__name__}.{f.name}: no docstring under the field; every study key needs one")
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None  # required
        cells = [key(f.name), f"`{_yaml(default)}`" if defaults else None, _escape(docs[f.name])]
        rows.append([c for c in cells if c is not None])
    headers = ["key", "default", "meaning"] if defaults else ["key", "meaning"]
    return _table(headers, rows)


def _renamed() -> str:
    from .study.schema import RENAMED

    return _table(["old key", "new key"], [[f"`{old}`", f"`{new}`"] for old, new in RENAMED.items()])


def _presets() -> str:
    from ssagan_core.presets import PRESETS, SWITCHES

    headers = ["`model.model`", *(f"`{s}`" for s in SWITCHES), "`w_adv` / `w_ctx` / `w_lat`", "fixed", "from"]
    rows = []
    for p in PRESETS.values():
        weights = " / ".join(f"{p.weights[w]:g}" for w in ("w_adv", "w_ctx", "w_lat"))
        fixed = ", ".join(f"`{f}`" for f in p.fixes) or "nothing (every switch is free)"
        rows.append([f"`{p.name}`", *(f"`{_yaml(p.switches[s])}`" for s in SWITCHES), weights, fixed, p.source])
    return _table(headers, rows)


def _paper_protocol() -> str:
    from ssagan_core.presets import LOSS_WEIGHTS, SWITCHES

    from .report.paper import load_paper_tables

    preset = ", ".join(f"`{s}`" for s in (*SWITCHES, *LOSS_WEIGHTS))
    source = "the paper (ssagan), the official code (baselines)"
    rows = [[preset, "the model's preset (see study-files.md)", "all", source]]
    for s in load_paper_tables().protocol.values():
        value = "not stated" if s.value is None else f"`{_yaml(s.value)}`"
        rows.append([f"`{s.name}`", value, ", ".join(s.models or ("all",)), _escape(s.source)])
    return _table(["setting", "the paper's value", "models", "from"], rows)


def _trials_columns() -> str:
    from .results import rows

    settings = (
        "the image size (`dataset.image_size`), then every `model.*` and `train.*` key of the study file (see "
        "[study-files.md](study-files.md)), one column each, as trained (the preset's values filled in)"
    )
    groups = [
        ("which trial", rows.IDENTITY),
        ("settings", {"`model`, `image_size`, `attention`, ..., `lr`, ...": settings}),
        ("outcome", rows.OUTCOME),
        ("metrics and cost", rows.METRICS),
        ("last losses", {"`final_*`": rows.FINAL_LOSSES}),
        ("where, when, which code", {**rows.PROVENANCE, **rows.RESOURCES}),
    ]
    body = []
    for group, columns in groups:
        for name, meaning in columns.items():
            body.append([group, name if name.startswith("`") else f"`{name}`", _escape(meaning)])
            group = ""
    return _table(["", "column", "meaning"], body)


def _columns(which: str) -> str:
    from .results import rows

    columns = rows.SCORE_COLUMNS if which == "scores" else rows.HISTORY_COLUMNS
    return _table(["column", "meaning"], [[f"`{n}`", _escape(m)] for n, m in columns.items()])


def _options(module: str) -> str:
    import importlib

    p = importlib.import_module(module).parser()
    rows = []
    for action in p._actions:  # argparse keeps its options here; there is no public accessor
        if isinstance(action, argparse._HelpAction):
            continue
        name = ", ".join(action.option_strings) or action.dest
        if action.metavar and action.option_strings:
            name += f" {action.metavar}"
        elif action.option_strings and action.nargs != 0:
            name += f" {action.dest.upper()}"
        rows.append([f"`{name}`", _escape(action.help or "")])
    return _table(["option", "meaning"], rows)


def _tree() -> str:
    lines = ["```"]
    for package in ("ablation", "ssagan_core"):
        for path in sorted((ROOT / package).rglob("*.py")):
            lines.append(f"{path.relative_to(ROOT)!s:<34} {_first_line(path)}")
    return "\n".join([*lines, "```"])


def _import_graph() -> str:
    """Which folder imports which, at run time (`if TYPE_CHECKING:` imports excluded), with the modules involved."""
    edges: dict[tuple[str, str], set[str]] = {}
    for module, imported in module_imports().items():
        source = _room(module)
        for target in imported:
            room = _room(target)
            if source and room and room != source:
                edges.setdefault((source, room), set()).add(target)
    lines = []
    for (source, room), targets in sorted(edges.items()):
        names = ", ".join(sorted(t.removeprefix("ablation.").removeprefix("ssagan_core.") for t in targets))
        lines.append([f"`{source}/`", f"`{room}/`" if room not in ("torch", "ray") else f"`{room}`", names])
    return _table(["from", "imports", "which modules"], lines)


def module_imports() -> dict[str, set[str]]:
    """Every ablation module -> the ablation and ssagan_core modules it imports at run time (function-level imports
    included, `if TYPE_CHECKING:` blocks excluded), plus `torch` and `ray` when it imports them."""
    names = {}
    for package in ("ablation", "ssagan_core"):
        for path in (ROOT / package).rglob("*.py"):
            names[".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")] = path
    out = {}
    for name, path in names.items():
        if not name.startswith("ablation"):
            continue
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = _imports(path, package)
        out[name] = {i for i in found if i in names or i in ("torch", "ray")}
    return out


def _imports(path: Path, package: str) -> set[str]:
    tree = ast.parse(path.read_text())
    type_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found |= {_top_if_external(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = parts[: len(parts) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(_top_if_external(module))
            found |= {f"{module}.{alias.name}" for alias in node.names}  # `from . import driver` names a module
    return found


def _top_if_external(module: str) -> str:
    """`torch.nn` -> `torch`, `ray.tune` -> `ray`: for those, the package is what matters."""
    return module.split(".")[0] if module.split(".")[0] in ("torch", "ray") else module


def _room(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "ssagan_core":
        return "ssagan_core"
    if parts[0] in ("torch", "ray"):
        return parts[0]
    return parts[1] if len(parts) > 1 and parts[1] in ROOMS else None


def _first_line(path: Path) -> str:
    """A module's role in one line: its docstring's first sentence, shortened."""
    doc = " ".join((ast.get_docstring(ast.parse(path.read_text())) or "(no docstring)").split())
    sentence = re.split(r"(?<! al)(?<!e\.g)(?<!i\.e)\. ", doc)[0].rstrip(".")
    return textwrap.shorten(sentence, width=84, placeholder=" ...")


def _yaml(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{}" if not value else str(value)
    return str(value)


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in rows)])


if __name__ == "__main__":
    sys.exit(main())
