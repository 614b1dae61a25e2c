"""Ray for a run: connect to a cluster (`--address`, `$RAY_ADDRESS`) or start a local instance tuned for a small
machine, check it can hold the study's trials, and keep Ray's and Optuna's chatter out of the study's output."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import warnings
from collections.abc import Iterator

import optuna
import ray

from ..study.schema import Resources
from .context import StartError

# A local Ray instance starts no idle worker processes ahead of demand: by default the raylet starts one per CPU as the
# driver connects, and on a small machine their imports compete with the driver's start while Tune still starts its
# own actors' workers. `studies/attention.yaml --set seeds=[0] --no-report`, three runs each in turns (2 cores,
# docs/performance.md): command to the first trial 10.16 / 8.23 / 7.86 s without them, 11.21 / 10.57 / 9.37 s with.
LOCAL_RAY_CONFIG = {"prestart_worker_first_driver": False}


class RaySession:
    """The Ray a run uses. `release()` says the run needs Ray no more (its trials are over): a Ray this run started
    or connected to then shuts down on a background thread while the driver folds the ledger and renders the report,
    and `ray_session`'s exit waits for it. `ray.shutdown` takes about 1.4 s here (docs/performance.md), about as
    long as the report; both ran one after the other before."""

    def __init__(self, owned: bool) -> None:
        self.owned = owned  # False: a Ray the caller had connected (a test session's), left as it is
        self._closing: threading.Thread | None = None

    def release(self) -> None:
        if self.owned and self._closing is None:
            self._closing = threading.Thread(target=ray.shutdown, name="ray-shutdown", daemon=True)
            self._closing.start()

    def close(self) -> None:
        if self._closing is not None:
            self._closing.join()
        elif self.owned:
            ray.shutdown()


@contextlib.contextmanager
def ray_session(address: str | None, num_cpus: int | None, num_gpus: int | None) -> Iterator[RaySession]:
    """Ray for the duration of a run: an already-connected Ray (a test session's) as is, else the cluster at
    `address` (or `$RAY_ADDRESS`), else a new local instance that is shut down at the end (or once released, see
    `RaySession`). Ray's own logs stay in its session folder; the driver prints only what a user can act on."""
    _quiet()
    if ray.is_initialized():
        yield RaySession(owned=False)
        return
    address = address or os.environ.get("RAY_ADDRESS")
    try:
        if address:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(
                address="local",
                num_cpus=num_cpus,
                num_gpus=num_gpus,
                include_dashboard=False,
                logging_level=logging.WARNING,
                log_to_driver=False,
                _system_config=LOCAL_RAY_CONFIG,
            )
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"Ray cluster at {address}" if address else "a local Ray instance"
        raise StartError(f"cannot start or reach {where}: {str(e).splitlines()[0]}") from None
    held = RaySession(owned=True)
    try:
        yield held
    finally:
        held.close()


def check_cluster(resources: Resources, storage: str | None) -> None:
    """Refuse a cluster that cannot run the study: too small for one trial, or multi-node without shared storage."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) > 1 and storage is None:
        raise StartError(
            f"this Ray cluster has {len(nodes)} nodes: give --storage a path every node can "
            f"reach (an NFS mount or s3://bucket/path)"
        )
    available = ray.cluster_resources()
    for key, resource in (("cpus", "CPU"), ("gpus", "GPU")):
        wanted, have = getattr(resources, f"{key}_per_trial"), available.get(resource, 0)
        if wanted > have:
            raise StartError(f"resources.{key}_per_trial: {wanted} {resource}s per trial, but the cluster has {have:g}")


def _quiet() -> None:
    """Keep Ray's and Optuna's chatter out of the study's output (it stays in Ray's log folder)."""
    logging.getLogger("ray").setLevel(logging.WARNING)
    # Ray 2.59+ turns token authentication on for every new local instance and logs a notice about it each time;
    # the notice is Ray's default at work, not something to act on, so it is not shown (authentication stays on).
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    logging.getLogger("ray.tune.search.optuna.optuna_search").setLevel(logging.ERROR)  # GridSampler's Study.stop note
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    # Progress reports carry val_auc only at evaluation points; the final report always has it.
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"  # the legacy engine honours verbose=0; the new one prints banners anyway
