"""A multi-node Ray cluster on one machine, for tests: ``ray start`` on loopback, token auth on.

Every node is a ``ray start ... --block`` process in its own session (process group) with its own
``--temp-dir`` under the cluster's root folder. That makes each node's processes easy to find and
end without touching any other Ray on the machine: the ``ray start`` process group, plus every
process whose open files lie under the node's temp dir (Ray workers start their own process
groups but keep their log files open there). ``ray stop`` is never used: it ends *every* Ray
process of the user on the machine, including other test runs' clusters. A small watchdog process
(``python ray_cluster.py --guard PID ROOT``) does the same cleanup if the test process dies
without tearing the cluster down (killed by a CI timeout, say).

Notes on Ray 2.60 that shaped this helper:

* ``ray start --node-ip-address=127.0.0.1`` (or ``localhost``) is rewritten to the machine's
  routable address on Linux (``services.resolve_ip_for_localhost``). Any other loopback address
  is kept, so the nodes register and talk to each other on :data:`LOOPBACK_IP` (``127.0.0.2``;
  Linux routes all of 127.0.0.0/8 to ``lo``). (The GCS and raylets still listen on all
  interfaces, as Ray does; token auth turns away anyone without the token.)
* ``RAY_AUTH_MODE=token`` must be set for every process (both nodes and the driver). ``ray start``
  does not create a token (``ensure_token_if_auth_enabled(create_token_if_missing=False)``); the
  helper writes a fresh one to ``<root>/auth_token`` and points ``RAY_AUTH_TOKEN_PATH`` at it, so
  the user's ``~/.ray/auth_token`` is neither read nor written.
* ``ray start`` (SIGTERM) drains for up to 30 s; teardown uses SIGKILL, which is also what a
  crashed machine looks like to the rest of the cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOOPBACK_IP = "127.0.0.2"
OBJECT_STORE_BYTES = 150 * 1024**2
START_TIMEOUT_S = 90.0
GROUPS_FILE = "process_groups"
_NODES_SCRIPT = """
import json, sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
print("NODES=" + json.dumps([
    {"node_id": n["NodeID"], "ip": n["NodeManagerAddress"], "alive": n["Alive"],
     "resources": n["Resources"]} for n in ray.nodes()
]))
"""


def free_port() -> int:
    """A TCP port that is free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK_IP, 0))
        return int(sock.getsockname()[1])


def ray_executable() -> str:
    """The ``ray`` CLI of the running interpreter's environment."""
    candidate = Path(sys.executable).with_name("ray")
    return str(candidate) if candidate.exists() else (shutil.which("ray") or "ray")


@dataclass
class RayNode:
    """One ``ray start --block`` process and the folder its processes write to."""

    name: str
    process: subprocess.Popen[bytes]
    temp_dir: Path
    log_path: Path

    def pids(self) -> set[int]:
        """Every live process of this node: its process group plus anything with files open
        under its temp dir (Ray workers, which run in process groups of their own)."""
        found = set(_group_members(self.process.pid))
        found.update(_pids_with_open_files_under(self.temp_dir))
        found.discard(os.getpid())
        return found

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the node's ``ray start`` output (for failure messages)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class LoopbackCluster:
    """Head plus worker nodes on this machine; use as a context manager (always torn down).

    ``env`` is what every process of the cluster (and any driver) runs with: token auth on, the
    token file, the loopback address, and short node-death detection.
    """

    root: Path
    port: int = field(default_factory=free_port)
    nodes: list[RayNode] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    background: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def create(cls, prefix: str = "tgc") -> LoopbackCluster:
        """A cluster rooted in a fresh short folder under the system temp dir (Ray's socket
        paths must stay under ~107 characters, which rules out pytest's deep tmp_path)."""
        root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp" if os.name == "posix" else None))
        cluster = cls(root=root)
        cluster.env = cluster._make_env()
        cluster._start_guard()
        return cluster

    def _start_guard(self) -> None:
        """A watchdog process that ends the cluster if this process dies without tearing it
        down (a killed test run); it exits by itself once :meth:`cleanup_files` ran."""
        subprocess.Popen(
            [sys.executable, __file__, "--guard", str(os.getpid()), str(self.root)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _record_group(self, pid: int) -> None:
        """Remember a process group this cluster started (leader pid and start time)."""
        with (self.root / GROUPS_FILE).open("a") as f:
            f.write(f"{pid} {_start_time(pid)}\n")

    @property
    def address(self) -> str:
        """The GCS address drivers and worker nodes connect to."""
        return f"{LOOPBACK_IP}:{self.port}"

    @property
    def token_path(self) -> Path:
        return self.root / "auth_token"

    def _make_env(self) -> dict[str, str]:
        self.token_path.write_text(secrets.token_hex(32))
        self.token_path.chmod(0o600)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS",))}
        env.pop("RAY_AUTH_TOKEN", None)
        env.update(
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN_PATH=str(self.token_path),
            RAY_USAGE_STATS_ENABLED="0",
            # A killed node is declared dead after ~3 s instead of ~15 s.
            RAY_health_check_period_ms="1000",
            RAY_health_check_timeout_ms="1000",
            RAY_health_check_failure_threshold="3",
            PYTHONUNBUFFERED="1",
        )
        return env

    # ------------------------------------------------------------------------------ nodes
    def _start(self, name: str, args: Sequence[str]) -> RayNode:
        temp_dir = self.root / name
        temp_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.root / f"{name}.log"
        command = [
            ray_executable(),
            "start",
            f"--node-ip-address={LOOPBACK_IP}",
            f"--temp-dir={temp_dir}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            "--disable-usage-stats",
            "--block",
            *args,
        ]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._record_group(process.pid)
        node = RayNode(name=name, process=process, temp_dir=temp_dir, log_path=log_path)
        self.nodes.append(node)
        return node

    def start_head(
        self,
        num_cpus: int = 1,
        resources: Mapping[str, float] | None = None,
        object_store_memory: int = OBJECT_STORE_BYTES,
    ) -> RayNode:
        """Start the head node (GCS, autoscaler monitor, a raylet) and wait for it."""
        args = [
            "--head",
            f"--port={self.port}",
            f"--num-cpus={num_cpus}",
            f"--object-store-memory={object_store_memory}",
            "--include-dashboard=false",
            f"--dashboard-port={free_port()}",
        ]
        if resources:
            args.append(f"--resources={json.dumps(dict(resources))}")
        node = self._start("head", args)
        self.wait_for_nodes(1)
        return node

    def add_worker(
        self,
        name: str = "worker",
        num_cpus: int = 1,
        resources: Mapping[str, float] | None = None,
        object_store_memory: int = OBJECT_STORE_BYTES,
    ) -> RayNode:
        """Start a worker node that joins the head; returns once the cluster counts it."""
        expected = len(self.alive_nodes()) + 1
        args = [
            f"--address={self.address}",
            f"--num-cpus={num_cpus}",
            f"--object-store-memory={object_store_memory}",
        ]
        if resources:
            args.append(f"--resources={json.dumps(dict(resources))}")
        node = self._start(name, args)
        self.wait_for_nodes(expected)
        return node

    def kill_node(self, node: RayNode, timeout_s: float = 20.0) -> None:
        """SIGKILL every process of one node (a crashed machine, to the rest of the cluster)."""
        _kill_all(node.pids, timeout_s)
        node.process.wait(timeout=timeout_s)

    def shutdown(self) -> list[str]:
        """Kill background commands, then every node (workers first); return what survived."""
        for process in self.background:
            if process.poll() is None:
                _killpg(process.pid)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=10)
        for node in reversed(self.nodes):
            with contextlib.suppress(Exception):
                self.kill_node(node)
        kill_leftovers(self.root, timeout_s=10.0)
        return [f"pid {pid}: {_cmdline(pid)[:100]}" for pid in _leftovers(self.root)]

    def cleanup_files(self) -> None:
        """Remove the cluster's folder (temp dirs, logs, token)."""
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LoopbackCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        survivors = self.shutdown()
        if survivors:
            raise RuntimeError("Ray processes survived teardown:\n" + "\n".join(survivors))
        self.cleanup_files()

    # ------------------------------------------------------------------------- queries
    def run(
        self,
        args: Sequence[str],
        timeout_s: float,
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command (e.g. a driver) with the cluster's environment (plus ``env``) in its own
        session; its whole process group is killed if it outlives ``timeout_s``."""
        process = subprocess.Popen(
            list(args),
            env={**self.env, **(env or {})},
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self._record_group(process.pid)
        try:
            out, _ = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _killpg(process.pid)
            out, _ = process.communicate()
            message = f"{args} timed out after {timeout_s:.0f}s:\n{out[-4000:]}"
            raise AssertionError(message) from None
        return subprocess.CompletedProcess(list(args), process.returncode, out, None)

    def popen(
        self,
        args: Sequence[str],
        log_path: Path,
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a command in the background (own session) with the cluster's environment plus
        ``env``, output to ``log_path``; :meth:`shutdown` kills its process group if it runs."""
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                list(args),
                env={**self.env, **(env or {})},
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._record_group(process.pid)
        self.background.append(process)
        return process

    def query_nodes(self) -> list[dict[str, Any]]:
        """``ray.nodes()`` as seen by a short-lived driver: node_id, ip, alive, resources."""
        result = self.run([sys.executable, "-c", _NODES_SCRIPT, self.address], timeout_s=60)
        for line in result.stdout.splitlines():
            if line.startswith("NODES="):
                return list(json.loads(line.removeprefix("NODES=")))
        raise RuntimeError(f"ray.nodes() failed (exit {result.returncode}):\n{result.stdout}")

    def alive_nodes(self) -> list[dict[str, Any]]:
        """The nodes ``ray.nodes()`` reports alive (none before the head is up)."""
        if not self.nodes:
            return []
        return [n for n in self.query_nodes() if n["alive"]]

    def wait_for_nodes(self, count: int, timeout_s: float = START_TIMEOUT_S) -> list[dict]:
        """Block until exactly ``count`` nodes are alive; raise with the logs otherwise."""
        deadline = time.monotonic() + timeout_s
        alive: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.process.poll() is not None:
                    raise RuntimeError(
                        f"ray start ({node.name}) exited with {node.process.returncode}:\n"
                        + node.log_tail()
                    )
            try:
                alive = self.alive_nodes()
            except RuntimeError:
                alive = []
            if len(alive) == count:
                return alive
            time.sleep(1.0)
        logs = "\n".join(f"--- {n.name}\n{n.log_tail()}" for n in self.nodes)
        raise RuntimeError(f"expected {count} alive nodes, got {len(alive)}:\n{logs}")


# ------------------------------------------------------------------------------ processes
def _proc_pids() -> Iterable[int]:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            yield int(entry)


def _group_members(pgid: int) -> list[int]:
    """Live processes whose process group is ``pgid``."""
    members = []
    for pid in _proc_pids():
        try:
            if os.getpgid(pid) == pgid and not _is_zombie(pid):
                members.append(pid)
        except (ProcessLookupError, PermissionError):
            continue
    return members


def _pids_with_open_files_under(folder: Path) -> list[int]:
    """Live processes holding a file descriptor on a path inside ``folder``."""
    prefix = str(folder.resolve()) + os.sep
    found = []
    for pid in _proc_pids():
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if target.startswith(prefix):
                if not _is_zombie(pid):
                    found.append(pid)
                break
    return found


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _start_time(pid: int) -> int:
    """The process's start time (clock ticks since boot), or -1 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return -1


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _killpg(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _kill_all(find: Any, timeout_s: float) -> None:
    """SIGKILL the pids ``find()`` returns until it returns none (new ones may appear while a
    raylet is still starting workers)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pids = find()
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def _leftovers(root: Path) -> set[int]:
    """Live processes of a cluster rooted at ``root``: members of the process groups it
    recorded, and any process with files open under ``root``."""
    found = set(_pids_with_open_files_under(root))
    groups = root / GROUPS_FILE
    for line in groups.read_text().splitlines() if groups.exists() else []:
        pgid, started = (int(x) for x in line.split())
        if _start_time(pgid) == started:  # the leader still runs: the group is surely ours
            found.update(_group_members(pgid))
    found.discard(os.getpid())
    return found


def kill_leftovers(root: Path, timeout_s: float = 30.0) -> None:
    """SIGKILL everything a cluster rooted at ``root`` started, until nothing is left."""
    _kill_all(lambda: _leftovers(root), timeout_s)


def _guard(parent: int, root: Path) -> None:
    """Wait while ``parent`` lives and ``root`` exists; if the parent died first, clean up."""
    while root.is_dir() and not _is_zombie(parent):
        time.sleep(1.0)
    if root.is_dir():
        kill_leftovers(root)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--guard":
    _guard(int(sys.argv[2]), Path(sys.argv[3]))
