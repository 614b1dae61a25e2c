"""Shared test settings: single-threaded torch (fast and deterministic on small inputs), the switch fixture, and
the slow-test gate: `pytest` runs the fast suite; `pytest --run-slow` (the README's test command, and CI) runs all."""

from __future__ import annotations

import pytest
import torch

from .helpers import SWITCHES, switch_id

torch.set_num_threads(1)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow (CI does)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    slow = [item for item in items if "slow" in item.keywords]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if "slow" not in item.keywords]


@pytest.fixture(params=SWITCHES, ids=switch_id)
def switches(request) -> dict:
    return request.param
