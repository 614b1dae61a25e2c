"""#11 item 8: the soak, 200 tiny trials through the real Ray runner on 2 CPUs (`tools/soak.py`): the driver's
memory and the time per trial stay flat, and the output folder grows by a bounded amount per trial."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))

from soak import run_soak


@pytest.mark.slow
def test_200_trials_keep_the_driver_flat(tmp_path) -> None:
    figures = run_soak(200, tmp_path / "soak")
    (tmp_path / "soak.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))
    # flat within 20% while trials run (the ledger's fold after the last row is a one-time cost: tools/soak.py)
    assert figures["rss_mb_before_the_end"] <= 1.2 * figures["rss_mb_at_trial_20"], figures
    assert figures["seconds_per_trial_end"] <= 2.0 * figures["seconds_per_trial_start"], figures
    assert figures["folder_kb_per_trial"] < 1024, figures  # a tiny trial leaves well under 1 MB, Ray's files included
