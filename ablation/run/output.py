"""The output folder a run may write: refusals made before anything is written (a file in the way, results without
`--resume`, another study's results, a resumed study whose settings changed)."""

from __future__ import annotations

from pathlib import Path

from ..results.ledger import STUDY_FILE, TRIALS_FILE, ResultStore, read_study
from ..study.compare import resume_changes
from ..study.schema import Study
from .context import StartError


def open_output(out: Path, study: Study, resume: bool) -> tuple[ResultStore, list[str]]:
    """The output folder's ledger, and what changed in the study file since the run that wrote it and may continue
    (it adds trials, or changes how they run or are judged); a `StartError` for anything else in the way."""
    if out.exists() and not out.is_dir():
        raise StartError(f"--out {out}: is a file, not a folder")
    store = ResultStore(out)
    if not len(store):
        return store, []
    if not resume:
        raise StartError(
            f"{out / TRIALS_FILE} already holds {len(store)} results; use --resume to continue "
            f"this study or --out to write elsewhere"
        )
    recorded = set(store.trials["study"])
    if recorded != {study.name}:
        raise StartError(f"--resume: {out} holds results of study {', '.join(sorted(recorded))}, not {study.name}")
    saved = read_study(out)
    if saved is None:
        return store, []
    allowed, refused = resume_changes(saved, study)
    if refused:
        raise StartError(
            f"--resume: the study changed since {out / STUDY_FILE} in what its trials train ({', '.join(refused)}); "
            f"undo that, or run it into a new folder with --out"
        )
    return store, allowed
