"""What every trial of one run shares: the study's name and design, the dataset, the code version, the resources per
trial and where Ray keeps this run's experiment. Made once by the CLI and passed unchanged to whichever runner runs
the trials."""

from __future__ import annotations

from dataclasses import dataclass

from ..results.rows import code_version
from ..study.schema import Resources, Study
from . import faults


class StartError(Exception):
    """The study cannot start (an output folder in the way, a cluster that cannot run it); one line for the user."""


@dataclass(frozen=True)
class RunContext:
    study: str  # the study's name
    dataset: str  # the dataset kind
    design: str  # grid | loco | search
    code_version: str  # package version + git commit
    resources: Resources
    storage: str | None = None  # Ray Tune's storage path (the Ray runner only)
    experiment: str = "round-1"  # Ray Tune's experiment of this run under `storage` (a resume adds a round)
    faults: tuple[tuple[str, str], ...] = ()  # injected by the reliability tests only (faults.py)

    @classmethod
    def of(cls, study: Study, storage: str | None = None, experiment: str = "round-1") -> RunContext:
        return cls(
            study.name,
            study.dataset["kind"],
            study.design,
            code_version(),
            study.resources,
            storage,
            experiment,
            faults.from_environment(),
        )

    @property
    def device(self) -> str:
        """Where a trial trains: CUDA when it holds a GPU share, else the CPU."""
        return "cuda" if self.resources.gpus_per_trial > 0 else "cpu"

    @property
    def threads(self) -> int:
        """torch threads of a CPU trial: its CPUs."""
        return max(1, int(self.resources.cpus_per_trial))


def device_label(device: str) -> str:
    """How a row names its device: `cpu`, or `cuda:0 (NVIDIA H200)`."""
    if not device.startswith("cuda"):
        return device
    import torch

    return f"{device} ({torch.cuda.get_device_name()})"
