"""``ray up`` / ``ray exec`` / ``ray job submit`` / ``ray down`` of ``cluster-onprem.yaml`` against
this machine, reached over SSH on 127.0.0.1 (see ``tests/ssh_loopback.py``).

The cluster file is ``cluster-onprem.yaml`` with only what names the machines changed: the
provider (local, head only: this machine as 127.0.0.2), the SSH account and key (and a proxy
command to the test's sshd port), the shared folder, the token file it copies, and the ports of
``ray start`` (free ones, so other Ray instances on the machine do not collide). Setup and start
commands are the file's own: a Python 3.11 venv, torch pinned, ``pip install -e .`` of the copied
checkout, Ray pinned, token authentication on every ``ray start``.

Then a small search runs as a Ray job on the cluster (``ray job submit`` on the head, through
``ray exec``), and its Parquet files must land in the shared folder with every trial and
iteration. After ``ray down`` no Ray process of the cluster account is left.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray_cluster import free_port

from tune_grid.results.schema import ITERATIONS_FILE, TRIALS_FILE, read_results

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
ONPREM = REPO / "cluster-onprem.yaml"
HEAD_IP = "127.0.0.2"  # Ray 2.60 rewrites 127.0.0.1 to the machine's routable address
SPACE = {
    "experiment": "rayup",
    "fixed": {
        "train_batch_size": 96,
        "minibatch_size": 32,
        "num_epochs": 1,
        "hidden_sizes": [16, 16],
        "num_envs_per_env_runner": 4,
    },
    "space": {"lr": {"type": "loguniform", "low": 1.0e-4, "high": 1.0e-2}},
    "search": {"algorithm": "random", "seed": 0},
    "scheduler": {"type": "fifo"},
    "num_samples": 2,
    "seeds": 1,
    "stop": {"training_iteration": 2},
    "evaluation": {"enabled": False},
}


def _ray() -> str:
    return str(Path(sys.executable).with_name("ray"))


def cluster_config(sshd: Any, root: Path, shared: Path, token: Path) -> dict[str, Any]:
    """``cluster-onprem.yaml`` pointed at this machine (only the machine-specific keys)."""
    from ssh_loopback import NODE_USER

    config = yaml.safe_load(ONPREM.read_text())
    config["cluster_name"] = f"tgup{secrets.token_hex(3)}"
    config["provider"] = {"type": "local", "head_ip": HEAD_IP, "worker_ips": []}
    config["max_workers"] = 0
    config["auth"] = {
        "ssh_user": NODE_USER,
        "ssh_private_key": str(sshd.key),
        "ssh_proxy_command": sshd.proxy_command,
    }
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    config["file_mounts"]["~/.ray/auth_token"] = str(token)
    setup = [c.replace("/shared/tune-grid", str(shared)) for c in config["setup_commands"]]
    assert setup != config["setup_commands"], "the shared-folder check moved"
    config["setup_commands"] = setup
    ports = (
        f"--port={free_port()} --node-ip-address={HEAD_IP} --dashboard-port={free_port()} "
        f"--ray-client-server-port={free_port()} --dashboard-agent-listen-port={free_port()} "
        f"--metrics-export-port={free_port()} --object-store-memory={200 * 1024**2}"
    )
    starts = [c.replace("--port=6379", ports) for c in config["head_start_ray_commands"]]
    assert starts != config["head_start_ray_commands"], "the head's ray start moved"
    config["head_start_ray_commands"] = starts
    return config


def dashboard_port(config: dict[str, Any]) -> int:
    match = re.search(r"--dashboard-port=(\d+)", " ".join(config["head_start_ray_commands"]))
    assert match
    return int(match.group(1))


def _run(args: list[str], env: dict[str, str], timeout: float, log: Path) -> str:
    start = time.monotonic()
    result = subprocess.run(
        args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    output = result.stdout + result.stderr
    with log.open("a") as f:
        f.write(f"$ {' '.join(args)}  ({time.monotonic() - start:.0f} s, rc {result.returncode})\n")
        f.write(output + "\n")
    assert result.returncode == 0, f"{' '.join(args[:3])} failed:\n{output[-4000:]}"
    return output


def _node_processes(user: str) -> list[int]:
    uid = pwd.getpwnam(user).pw_uid
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
    return pids


@pytest.fixture(scope="module")
def sshd() -> Any:
    from ssh_loopback import short_tempdir, start_loopback_sshd, unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    root = short_tempdir("tgup")
    try:
        server = start_loopback_sshd(root)
        yield server
        server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_ray_up_exec_job_submit_down(sshd: Any) -> None:
    from ssh_loopback import NODE_USER

    root = sshd.root
    entry = pwd.getpwnam(NODE_USER)
    shared = root / "shared"
    shared.mkdir()
    os.chown(shared, entry.pw_uid, entry.pw_gid)
    token = root / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    space = shared / "rayup.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    config = cluster_config(sshd, root, shared / "tune-grid", token)
    config_path = root / "cluster.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    log = root / "ray_up.log"
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "RAY_TMPDIR": str(root / "launcher"),  # the launcher's cluster state, apart from the head's
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    (root / "launcher").mkdir()
    timings: dict[str, float] = {}
    try:
        start = time.monotonic()
        _run([_ray(), "up", str(config_path), "-y", "--no-config-cache"], env, 1500, log)
        timings["ray up"] = time.monotonic() - start

        status = _run([_ray(), "exec", str(config_path), "ray status"], env, 120, log)
        # One node, the head (idle or busy), with the CPUs cluster-onprem.yaml gives it.
        assert re.search(r"(Active|Idle):\s*\n\s*1 local\.cluster\.node", status), status
        nproc = len(os.sched_getaffinity(0))
        cpus = nproc - 2 if nproc > 2 else 1
        assert f"/{cpus}.0 CPU" in status, status[-2000:]

        start = time.monotonic()
        submit = (
            f"cd ~/tune-grid && ray job submit --address http://127.0.0.1:{dashboard_port(config)} "
            f"--working-dir . -- tune-grid search {space} --address auto "
            f"--storage {shared / 'tune-grid'}"
        )
        output = _run([_ray(), "exec", str(config_path), submit], env, 900, log)
        timings["ray job submit"] = time.monotonic() - start
        assert "succeeded" in output, output[-3000:]

        results = shared / "tune-grid" / SPACE["experiment"]
        trials = read_results(results / TRIALS_FILE, "trials").to_pylist()
        assert len(trials) == SPACE["num_samples"]
        assert all(t["status"] == "TERMINATED" and t["iterations"] == 2 for t in trials), trials
        rows = read_results(results / ITERATIONS_FILE, "iterations").to_pylist()
        assert sorted((r["trial_id"], r["iteration"]) for r in rows) == sorted(
            (t["trial_id"], i) for t in trials for i in (1, 2)
        )
        assert {t["node_ip"] for t in trials} == {HEAD_IP}
        assert not list((results / "parts").glob("*.parquet"))  # merged at the end
    finally:
        start = time.monotonic()
        down = subprocess.run(
            [_ray(), "down", str(config_path), "-y"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        timings["ray down"] = time.monotonic() - start
        with log.open("a") as f:
            f.write(down.stdout + down.stderr)
        print("timings:", {k: round(v) for k, v in timings.items()})
        time.sleep(2)
        left = [p for p in _node_processes(NODE_USER) if _is_ray(p)]
        for pid in _node_processes(NODE_USER):  # the test's own account: nothing else runs there
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert down.returncode == 0, down.stdout[-2000:] + down.stderr[-2000:]
    assert not left, f"Ray processes of {NODE_USER} left after ray down: {left}"


def _is_ray(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"ray" in cmdline and b"sshd" not in cmdline
