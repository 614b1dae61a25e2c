"""The cluster files in deploy/ and the way Ray users scale out: the KubeRay RayJob and the `ray up` cluster file
parse, carry what their tools need and name study commands the runner accepts; and `ray job submit` runs a study on
a real two-node cluster (local, started with the `ray` CLI), writing its results into the storage it is given."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import ray.autoscaler
import yaml

from ablation.results.ledger import load_results
from ablation.run.cli import parser as run_parser
from ablation.study.design import trial_specs
from ablation.study.load import data_config, load_study
from ssagan_core.data import resolve_categories

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
RAYJOB, CLUSTER = DEPLOY / "rayjob.yaml", DEPLOY / "cluster.yaml"
VENV_BIN = Path(sys.executable).parent  # the interpreter running the tests, and the `ray` CLI installed beside it
COMMAND = re.compile(r"python -m ablation\.run (.+)$")


def _rayjob() -> dict:
    (job,) = [doc for doc in yaml.safe_load_all(RAYJOB.read_text()) if doc and doc.get("kind") == "RayJob"]
    return job


def _commands(path: Path) -> list[str]:
    """The runner's arguments in every `python -m ablation.run ...` of a file's comments (and a RayJob's
    entrypoint): what a user copies from there must run."""
    lines = [line.strip().lstrip("#") for line in path.read_text().splitlines() if line.strip().startswith("#")]
    if path == RAYJOB:
        lines.append(_rayjob()["spec"]["entrypoint"])
    return [m.group(1) for line in lines if (m := COMMAND.search(line))]


def _claim_mounts(pod: dict) -> dict[str, str]:
    """A pod spec's mount paths of PersistentVolumeClaims -> claim name."""
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v
    }
    mounts = [m for c in pod["containers"] for m in c.get("volumeMounts", [])]
    return {m["mountPath"]: claims[m["name"]] for m in mounts if m["name"] in claims}


# --- the files ------------------------------------------------------------------------------------------------


def test_the_rayjob_runs_a_study_on_a_cpu_head_and_gpu_workers() -> None:
    job = _rayjob()
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    assert "python -m ablation.run" in spec["entrypoint"]
    assert spec["shutdownAfterJobFinishes"] is True
    cluster = spec["rayClusterSpec"]
    head = cluster["headGroupSpec"]["template"]["spec"]
    (head_container,) = head["containers"]
    assert "nvidia.com/gpu" not in head_container["resources"]["limits"]
    workers = cluster["workerGroupSpecs"]
    assert workers and all(w["groupName"] and w["replicas"] >= 1 for w in workers)
    containers = [c for w in workers for c in w["template"]["spec"]["containers"]]
    assert any(int(c["resources"]["limits"].get("nvidia.com/gpu", 0)) >= 1 for c in containers), "no GPU worker"

    # One shared volume, mounted at the same path on the head and every worker, holds --out and --storage.
    shared = _claim_mounts(head)
    assert shared, "the head mounts no PersistentVolumeClaim"
    for w in workers:
        assert _claim_mounts(w["template"]["spec"]) == shared, f"worker group {w['groupName']} mounts another volume"
    claims = [d for d in yaml.safe_load_all(RAYJOB.read_text()) if d and d.get("kind") == "PersistentVolumeClaim"]
    assert [c["metadata"]["name"] for c in claims] == list(shared.values())
    assert "ReadWriteMany" in claims[0]["spec"]["accessModes"]
    args = run_parser().parse_args(shlex.split(COMMAND.search(spec["entrypoint"]).group(1)))
    for path in (args.out, args.storage):
        assert path and any(path.startswith(f"{mount}/") for mount in shared), f"{path} is not on the shared volume"


def test_the_cluster_file_is_a_ray_up_config_with_gpu_workers() -> None:
    config = yaml.safe_load(CLUSTER.read_text())
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)  # the cluster launcher's own schema, as `ray up` checks it
    for key in ("cluster_name", "max_workers", "provider", "auth", "available_node_types", "head_node_type",
                "file_mounts", "setup_commands", "head_start_ray_commands", "worker_start_ray_commands"):  # fmt: skip
        assert config.get(key), f"cluster.yaml has no {key}"
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    assert config["provider"]["type"] == "aws"
    workers = {name: t for name, t in types.items() if name != config["head_node_type"]}
    assert any(t.get("resources", {}).get("GPU", 0) >= 1 for t in workers.values()), "no worker type has a GPU"
    assert not types[config["head_node_type"]].get("resources", {}).get("GPU")
    assert all(t.get("max_workers", 0) <= config["max_workers"] for t in workers.values())
    # The synced checkout is what setup installs.
    (remote,) = [r for r, local in config["file_mounts"].items() if local == "."]
    assert any(f"pip install -e {remote}" in command for command in config["setup_commands"])


@pytest.mark.parametrize("path", [RAYJOB, CLUSTER], ids=lambda p: p.name)
def test_every_study_command_in_deploy_is_valid(path: Path) -> None:
    """Each command parses with the runner's own options, and its study (with its --set overrides) loads and has
    trials."""
    commands = _commands(path)
    assert commands, f"{path.name} names no `python -m ablation.run` command"
    for command in commands:
        args = run_parser().parse_args(shlex.split(command))
        assert args.study.startswith("studies/") and (ROOT / args.study).is_file(), args.study
        assert args.out and Path(args.out).is_absolute(), "a job's --out must not depend on its working directory"
        assert args.storage, "a multi-node cluster needs --storage"
        study = load_study(ROOT / args.study, args.overrides)
        assert trial_specs(study, resolve_categories(data_config(study)))


# --- `ray job submit` on a local two-node cluster ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _LocalCluster:
    """A head and a worker node started with `ray start --block`, each in its own process group, so that teardown
    stops exactly these processes (never `ray stop`, which stops every Ray instance of the machine).

    As in deploy/, the head has no CPU for trials (the job's driver needs none) and the worker has the machine's two:
    every trial must run on the other node than the driver, which makes that checkable. (With a CPU on each node,
    whether the worker node gets any trial depends on how fast its first Tune actor starts: under load, not always.)
    """

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port, self.dashboard = _free_port(), _free_port()
        self.address = f"http://127.0.0.1:{self.dashboard}"
        # Only our own settings: no RAY_ADDRESS (or any other RAY_*) from the environment, so nothing else attaches;
        # the venv first on PATH, so `python` in a job is the venv's (with the project's dependencies); a token of
        # our own (Ray 2.59+ turns token authentication on, and both nodes and the CLI must share the token).
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env.update(
            PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN=secrets.token_hex(32),
            RAY_USAGE_STATS_ENABLED="0",
            SSAGAN_CACHE_DIR=str(tmp / "cache"),
        )
        self.env = env
        self.processes: list[subprocess.Popen] = []

    def start(self) -> None:
        head = ["--head", f"--port={self.port}", "--include-dashboard=true", f"--dashboard-port={self.dashboard}"]
        self._start("head", 0, *head)
        self._wait(1, timeout=120)
        self._start("worker", 2, f"--address=127.0.0.1:{self.port}")
        self._wait(2, timeout=120)

    def _start(self, name: str, cpus: int, *args: str) -> None:
        # Each node its own temp dir: two nodes of one machine sharing one would share the runtime-env folder too,
        # and a node deleting its copy of the job's working_dir would delete the other's (the driver's cwd).
        command = [str(VENV_BIN / "ray"), "start", "--block", f"--num-cpus={cpus}", f"--temp-dir={self.tmp / name}"]
        command += [f"--dashboard-agent-listen-port={_free_port()}", "--disable-usage-stats", *args]
        with (self.tmp / f"{name}.log").open("w") as log:
            self.processes.append(
                subprocess.Popen(
                    command, cwd=self.tmp, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            )

    def ray(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        command = [str(VENV_BIN / "ray"), *args]
        return subprocess.run(command, cwd=self.tmp, env=self.env, capture_output=True, text=True, timeout=timeout)

    def state(self, kind: str, *filters: str) -> list[dict]:
        """`ray list KIND` from the dashboard's state API ([] until it answers)."""
        where = [arg for f in filters for arg in ("--filter", f)]
        listed = self.ray("list", kind, "--address", self.address, "--format", "json", *where)
        try:
            return json.loads(listed.stdout) if listed.returncode == 0 else []
        except json.JSONDecodeError:
            return []

    def nodes(self) -> list[dict]:
        return self.state("nodes", "state=ALIVE")

    def _wait(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [p.args[1:4] for p in self.processes if p.poll() is not None]
            assert not dead, f"a node exited: {dead}\n{self.logs()}"
            if len(self.nodes()) >= n:
                return
            time.sleep(1)
        raise AssertionError(f"{n} nodes did not come up in {timeout:.0f} s\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.tmp.glob("*.log")))

    def stop(self) -> None:
        """SIGTERM to each `ray start --block` (it stops its node's processes), the worker first; SIGKILL to the
        process group of one that does not end; then SIGKILL to any process still naming this cluster's temp dir
        (Ray's workers start their own sessions, outside the group)."""
        for p in reversed(self.processes):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.processes):
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=30)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        for pid in _pids_naming(str(self.tmp)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _pids_naming(text: str) -> list[int]:
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if text in (proc / "cmdline").read_bytes().decode(errors="replace") and int(proc.name) != os.getpid():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.fixture
def two_nodes() -> Iterator[_LocalCluster]:
    tmp = Path(tempfile.mkdtemp(prefix="rj", dir="/tmp"))  # short: Ray's socket paths must stay under 108 bytes
    cluster = _LocalCluster(tmp)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.slow
def test_ray_job_submit_runs_a_study_on_a_two_node_cluster(two_nodes: _LocalCluster, tmp_path: Path) -> None:
    """`ray job submit --working-dir .` from the repository root, as docs/running.md says: the job finds the
    cluster through the RAY_ADDRESS Ray sets for it (no --address), ships the code, runs every trial on the worker
    node and writes the results into the given storage; nothing lands in the checkout."""
    nodes = two_nodes.nodes()
    (worker,) = [n["node_id"] for n in nodes if not n["is_head_node"]]
    assert len(nodes) == 2
    shared = tmp_path / "shared"  # stands for the shared file system (both nodes are on this machine)
    reports = ROOT / "reports"  # where a runner writes by default; other sessions may touch the rest of the checkout
    before = sorted(reports.iterdir()) if reports.exists() else []
    submission = f"smoke-{secrets.token_hex(4)}"
    started = time.monotonic()
    submitted = two_nodes.ray(
        "job", "submit", "--address", two_nodes.address, "--submission-id", submission,
        "--working-dir", str(ROOT), "--runtime-env-json", json.dumps({"excludes": [".venv", ".git", "reports"]}),
        "--", "python", "-m", "ablation.run", "studies/smoke.yaml", "--out", str(shared / "smoke"),
        "--storage", str(shared / "ray"), timeout=400,
    )  # fmt: skip
    took = time.monotonic() - started
    log = f"{submitted.stdout[-4000:]}\n{submitted.stderr[-4000:]}"
    assert submitted.returncode == 0, f"the job failed after {took:.0f} s:\n{log}\n{two_nodes.logs()}"
    (job,) = two_nodes.state("jobs", f"submission_id={submission}")
    assert job["status"] == "SUCCEEDED", job
    assert "study smoke: 8 trials succeeded, 0 failed" in log

    results = load_results(shared / "smoke")
    study = load_study(ROOT / "studies" / "smoke.yaml")
    assert len(results.trials) == len(trial_specs(study, resolve_categories(data_config(study)))) == 8
    assert set(results.trials["status"]) == {"ok"} and results.trials["trial_key"].is_unique
    assert (shared / "smoke" / "report.md").is_file() and any((shared / "ray").glob("round-1/trial_*"))
    assert set(results.trials["node"]) == {worker[:12]}, "the trials did not all run on the worker node"
    assert (sorted(reports.iterdir()) if reports.exists() else []) == before, "the job wrote into the checkout"
