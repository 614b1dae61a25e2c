"""Shared test settings: single-threaded torch (fast and deterministic on small inputs), tiny model sizes."""

from __future__ import annotations

import pytest
import torch

from .helpers import SWITCHES, switch_id

torch.set_num_threads(1)


@pytest.fixture(params=SWITCHES, ids=switch_id)
def switches(request) -> dict:
    return request.param
