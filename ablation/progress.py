"""What a running study shows: a live rich panel on a terminal, one plain line per finished trial otherwise."""

from __future__ import annotations

import math
import time

from ray import tune
from rich.console import Console
from rich.live import Live
from rich.table import Table

from .results import FAILED, OK, ResultStore


class StudyView(tune.Callback):
    """Trials done / running / failed / pending, elapsed time and ETA, and the best AUC so far."""

    def __init__(self, study: str, total: int, store: ResultStore, console: Console | None = None) -> None:
        self.study, self.total, self.store = study, total, store
        self.console = console or Console(stderr=True)
        self.running: set[str] = set()
        self.started = time.monotonic()
        self.start_count = self._count(OK) + self._count(FAILED)  # outcomes recorded before this run
        self.live: Live | None = None
        self._last_draw = 0.0

    def __getstate__(self) -> dict:  # Tune pickles its callbacks; the view (console, live panel) is in-process only
        return {"study": self.study, "total": self.total}

    def __enter__(self) -> StudyView:
        if self.console.is_terminal:
            self.live = Live(self._panel(), console=self.console, refresh_per_second=2, transient=False)
            self.live.__enter__()
        else:
            self.console.print(f"study {self.study}: {self.total} trials, {self.start_count} already recorded")
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.update(self._panel())
            self.live.__exit__(*exc)
            self.live = None

    # --- Tune callback hooks (called in the driver) ---

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.running.add(trial.trial_id)
        self._draw()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._finished(trial, failed=False)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._finished(trial, failed=True)

    def on_step_end(self, iteration, trials, **info) -> None:
        self._draw()

    def _finished(self, trial, failed: bool) -> None:
        self.running.discard(trial.trial_id)
        if self.live is None:
            rows = self.store.trials
            row = rows[rows["trial_id"] == trial.trial_id].tail(1)
            done = self._count(OK) + self._count(FAILED)
            if not row.empty:
                r = row.iloc[0]
                detail = (
                    f"error: {r['error']}"
                    if r["status"] == FAILED
                    else f"auc={r['auc']:.3f} val_auc={r['val_auc']:.3f}"
                )
                self.console.print(
                    f"[{done}/{self.total}] {r['status']:<7} {r['trial_key']}  {detail}", highlight=False
                )
        self._draw(force=True)

    # --- rendering ---

    def _count(self, status: str) -> int:
        rows = self.store.trials
        return 0 if rows.empty else int((rows["status"] == status).sum())

    def _draw(self, force: bool = False) -> None:
        if self.live is None or (not force and time.monotonic() - self._last_draw < 0.5):
            return
        self._last_draw = time.monotonic()
        self.live.update(self._panel())

    def _panel(self) -> Table:
        ok, failed = self._count(OK), self._count(FAILED)
        running = len(self.running)
        pending = max(self.total - ok - failed - running, 0)
        elapsed = time.monotonic() - self.started
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
            _duration(elapsed),
            _duration(eta),
            self._best(),
        )
        return table

    def _best(self) -> str:
        rows = self.store.trials
        if rows.empty or not (rows["status"] == OK).any():
            return "-"
        best = rows[rows["status"] == OK].sort_values("auc", ascending=False).iloc[0]
        return f"{best['auc']:.3f} ({best['trial_key']})"


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
