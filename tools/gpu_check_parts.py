"""The parts of `tools/gpu_check.py` that know nothing of GPUs: running a command under a time limit, reading pytest's
JUnit XML, the overlap of trials' time intervals, and the table's rows and Markdown."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STOP_GRACE_S = 10  # a part past its limit gets Ctrl-C (the runner shuts its Ray instance down), then SIGKILL


@dataclass
class Row:
    """One line of the table."""

    part: str
    case: str
    measured: str
    status: str  # "ok", "skipped: ...", "failed: ..."

    @property
    def failed(self) -> bool:
        return self.status.startswith("failed")


@dataclass
class Outcome:
    returncode: int | None  # None: stopped at its time limit
    seconds: float
    output: str

    def failure(self, limit_s: int) -> str | None:
        """The status of a command that did not succeed, with the last line it printed; None when it did."""
        if self.returncode is None:
            return f"failed: timed out after {limit_s} s"
        if self.returncode != 0:
            return f"failed: exit {self.returncode}: {last_line(self.output)}"
        return None


def run_command(command: list[str], limit_s: int, env: dict[str, str], log: Path) -> Outcome:
    """Run `command` in the repository root, its output into `log`; past `limit_s` it is stopped (Ctrl-C first, so
    the runner shuts its Ray instance down, then SIGKILL for its whole process group)."""
    tic = time.perf_counter()
    print(f"gpu_check: {' '.join(command[1:4])} ... (at most {limit_s} s; log {log})", file=sys.stderr, flush=True)
    with log.open("w") as f:
        f.write(" ".join(command) + "\n\n")
        f.flush()
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            code = None
            _stop(proc)
    return Outcome(code, time.perf_counter() - tic, log.read_text(errors="replace"))


def _stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def read_junit(path: Path) -> tuple[dict, dict[str, str]]:
    """pytest's JUnit XML: the counts (passed = tests - failed - errors - skipped) and each failure's first line."""
    suite = ET.parse(path).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {name: int(suite.get(name, 0)) for name in ("tests", "failures", "errors", "skipped")}
    counts = {
        "tests": counts["tests"],
        "passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
        "failed": counts["failures"],
        "errors": counts["errors"],
        "skipped": counts["skipped"],
        "seconds": float(suite.get("time", 0.0)),
    }
    failures = {}
    for case in suite.iter("testcase"):
        for kind in ("failure", "error"):
            found = case.find(kind)
            if found is not None:
                message = (found.get("message") or found.text or kind).strip().splitlines()
                failures[case.get("name")] = message[0][:200] if message else kind
    return counts, failures


def time_overlap(started: list[str], finished: list[str]) -> dict:
    """How the trials' [started_at, finished_at] intervals (ISO 8601, whole seconds) overlap: each one's duration,
    their span and sum, the most running at once, and how long all of them ran together (<= 0: never)."""
    starts = [datetime.fromisoformat(s) for s in started]
    ends = [datetime.fromisoformat(f) for f in finished]
    if not starts:
        return {"durations_s": [], "span_s": 0.0, "sum_s": 0.0, "peak": 0, "all_at_once_s": 0.0}
    events = sorted([(t, 1) for t in starts] + [(t, -1) for t in ends], key=lambda e: (e[0], e[1]))  # ends first
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return {
        "durations_s": [(f - s).total_seconds() for s, f in zip(starts, ends, strict=True)],
        "span_s": (max(ends) - min(starts)).total_seconds(),
        "sum_s": sum((f - s).total_seconds() for s, f in zip(starts, ends, strict=True)),
        "peak": peak,
        "all_at_once_s": (min(ends) - max(starts)).total_seconds(),
    }


def render_table(rows: list[Row]) -> str:
    """The rows as one Markdown table (what goes into the README)."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| part | case | measured | status |", "|---|---|---|---|"]
    lines += [f"| {cell(r.part)} | {cell(r.case)} | {cell(r.measured)} | {cell(r.status)} |" for r in rows]
    return "\n".join(lines)


def counted(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "(no output)"
