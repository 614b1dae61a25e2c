"""Study-file values checked against the config dataclasses' types, and the one-line `StudyError` that names the key.

The types are read off the dataclass annotations (`int | None`, `tuple[int, ...]`), so a new config field is a new
study key with no change here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ssagan_core.config import RUNTIME_FIELDS, ModelConfig, TrainConfig, is_integer, is_number


class StudyError(ValueError):
    """The study file cannot be run; the message is one line and names the key."""


# Config fields a study cannot set, per section: the image size is the dataset's, the runtime fields the runner's.
NOT_STUDY_KEYS = {"model": ("image_size",), "train": RUNTIME_FIELDS}


_SCALARS = {"bool": bool, "int": int, "float": float, "str": str, "None": type(None)}


def field_types(config: type, exclude: tuple) -> dict[str, tuple]:
    """Study key (= field name) -> accepted Python types, parsed from the dataclass annotations (e.g. `int | None`)."""
    return {
        f.name: tuple(_parse_type(part.strip()) for part in str(f.type).split("|"))
        for f in dataclasses.fields(config)
        if f.name not in exclude
    }


def _parse_type(text: str) -> type | tuple:
    if text.startswith("tuple["):
        return ("list", _SCALARS[text[len("tuple[") :].split(",")[0].strip()])
    return _SCALARS[text]


def all_factor_types() -> dict[str, tuple]:
    types = {f"model.{k}": v for k, v in field_types(ModelConfig, NOT_STUDY_KEYS["model"]).items()}
    return types | {f"train.{k}": v for k, v in field_types(TrainConfig, NOT_STUDY_KEYS["train"]).items()}


def check_type(value: Any, accepted: tuple, where: str) -> None:
    for t in accepted:
        if isinstance(t, tuple):  # ("list", element type)
            if isinstance(value, list) and all(_matches(v, t[1]) for v in value):
                return
        elif _matches(value, t):
            return
    raise StudyError(f"{where}: expected {_describe(accepted)}, got {value!r} ({kind(value)})")


def _matches(value: Any, t: type) -> bool:
    if t is float:
        return is_number(value)
    if t is int:
        return is_integer(value)
    if t is bool:
        return isinstance(value, bool)
    return isinstance(value, t)


def _describe(accepted: tuple) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
    return " or ".join(
        f"a list of {names[t[1]].split(' ', 1)[-1]}s" if isinstance(t, tuple) else names[t] for t in accepted
    )


def kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "an integer" if is_integer(value) else "a number" if is_number(value) else type(value).__name__
    )


def no_unknown(values: dict, known: tuple, prefix: str) -> None:
    for key in values:
        if key not in known:
            raise StudyError(f"{prefix}{key}: unknown key; {prefix.rstrip('.') or 'a study'} takes {listing(known)}")


def listing(keys) -> str:
    return ", ".join(keys)
