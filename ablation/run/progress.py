"""What a running study shows: a live rich panel on a terminal, one plain line per finished trial otherwise.

The runners tell it when a trial starts and hand it each recorded row; it knows nothing of Ray.
"""

from __future__ import annotations

import math
import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from ..results.ledger import ResultStore
from ..results.rows import FAILED, OK


class StudyView:
    """Trials done / running / failed / pending, elapsed time and ETA, and the best AUC so far."""

    def __init__(
        self, study: str, total: int, store: ResultStore, console: Console | None = None, at_most: bool = False
    ) -> None:
        """`at_most`: `total` is a worst case (adaptive seeds stop when every effect is decided)."""
        self.study, self.total, self.store, self.at_most = study, total, store, at_most
        self.console = console or Console(stderr=True)
        self.running: set[str] = set()
        self.started_at = time.monotonic()
        self.start_count = store.count(OK) + store.count(FAILED)  # outcomes recorded before this run
        self.live: Live | None = None
        self._last_draw = 0.0

    def __enter__(self) -> StudyView:
        if self.console.is_terminal:
            self.live = Live(self._panel(), console=self.console, refresh_per_second=2, transient=False)
            self.live.__enter__()
        else:
            self.console.print(
                f"study {self.study}: {'at most ' if self.at_most else ''}{self.total} trials, "
                f"{self.start_count} already recorded",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.update(self._panel())
            self.live.__exit__(*exc)
            self.live = None

    # --- what the runners call ---

    def started(self, trial_id: str) -> None:
        self.running.add(trial_id)
        self.refresh()

    def finished(self, row: dict[str, Any]) -> None:
        """A trial's row was recorded (ok, failed or stopped)."""
        self.running.discard(row["trial_id"])
        if self.live is None:
            done = self.store.count(OK) + self.store.count(FAILED)
            detail = (
                f"error: {row['error']}"
                if row["status"] == FAILED
                else f"auc={row['auc']:.3f} val_auc={row['val_auc']:.3f}"
            )
            self.console.print(
                f"[{done}/{self.total}] {row['status']:<7} {row['trial_key']}  {detail}",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
        self.refresh(force=True)

    def note(self, text: str) -> None:
        """One plain line about the run (printed above the live panel on a terminal)."""
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def refresh(self, force: bool = False) -> None:
        if self.live is None or (not force and time.monotonic() - self._last_draw < 0.5):
            return
        self._last_draw = time.monotonic()
        self.live.update(self._panel())

    # --- rendering ---

    def _panel(self) -> Table:
        ok, failed = self.store.count(OK), self.store.count(FAILED)
        running = len(self.running)
        pending = max(self.total - ok - failed - running, 0)
        elapsed = time.monotonic() - self.started_at
        finished_now = ok + failed - self.start_count
        eta = elapsed / finished_now * (pending + running) if finished_now > 0 else math.nan
        table = Table(title=f"study {self.study}", show_header=True, header_style="bold")
        for name in ("done", "running", "failed", "pending", "elapsed", "ETA", "best AUC"):
            table.add_column(name, justify="right")
        table.add_row(
            f"{ok}/{self.total}",
            str(running),
            f"[red]{failed}[/red]" if failed else "0",
            str(pending),
            _clock(elapsed),
            _clock(eta),
            self._best(),
        )
        return table

    def _best(self) -> str:
        rows = self.store.trials
        if rows.empty or not (rows["status"] == OK).any():
            return "-"
        best = rows[rows["status"] == OK].sort_values("auc", ascending=False).iloc[0]
        return f"{best['auc']:.3f} ({best['trial_key']})"


def _clock(seconds: float) -> str:
    """A duration as a clock reads: 4:05, 1:02:03; "-" when unknown."""
    if not math.isfinite(seconds):
        return "-"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
