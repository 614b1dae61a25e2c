"""Shared test settings: single-threaded torch (fast and deterministic on small inputs), the switch fixture, and
the slow-test gate: `pytest` runs the fast suite; `pytest --run-slow` (the README's test command, and CI) runs all.
Tests marked `cuda` are skipped where there is no CUDA device (`tools/gpu_check.py` runs them on a GPU machine)."""

from __future__ import annotations

import pytest
import torch

from .helpers import SWITCHES, switch_id

torch.set_num_threads(1)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow (CI does)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not torch.cuda.is_available():  # CUDA tests are skipped, not deselected: the summary says why they did not run
        no_cuda = pytest.mark.skip(reason="no CUDA device (torch.cuda.is_available() is False)")
        for item in items:
            if item.get_closest_marker("cuda") is not None:
                item.add_marker(no_cuda)
    if config.getoption("--run-slow"):
        return
    slow = [item for item in items if "slow" in item.keywords]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if "slow" not in item.keywords]


@pytest.fixture(params=SWITCHES, ids=switch_id)
def switches(request) -> dict:
    return request.param


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance (2 CPUs) shared by every in-process runner test."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()
