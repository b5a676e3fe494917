"""A real two-node Ray cluster on this machine (``ray start`` head + worker, loopback, token auth):
a tiny search spreads its trials over both nodes, and a search that loses the worker node midway
still accounts for every trial (Tune retries the lost trial on the head from its checkpoint).

Both nodes have 1 CPU and trials take 1 CPU, so two concurrent trials must use both nodes. The
worker node also carries a custom resource (``worker_node``) that identifies it in ``ray.nodes()``.
Nothing has to be running beforehand; every process the test starts is ended by the fixture, also
on failure (see ``tests/ray_cluster.py``). Runtime: about 3 minutes on 2 CPUs.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from ray_cluster import LOOPBACK_IP, LoopbackCluster

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux /proc"),
]

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKER_RESOURCE = "worker_node"
FINAL_STATUSES = {"TERMINATED", "ERROR"}

TINY_CLUSTER_SEARCH: dict[str, Any] = {
    "experiment": "cluster_spread",
    "fixed": {
        "train_batch_size": 96,
        "minibatch_size": 32,
        "num_epochs": 1,
        "hidden_sizes": [16, 16],
        "num_env_runners": 0,
        "num_envs_per_env_runner": 4,
    },
    "space": {"lr": {"type": "loguniform", "low": 1.0e-4, "high": 1.0e-2}},
    "search": {"algorithm": "random", "seed": 0},
    "scheduler": {"type": "fifo"},
    "num_samples": 4,
    "max_concurrent_trials": 2,
    "resources_per_trial": {"cpu": 1, "gpu": 0},
    "seeds": 1,
    "stop": {"training_iteration": 3},
    "evaluation": {"enabled": False},
    "max_failures": 2,
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[LoopbackCluster]:
    """Head (1 CPU) + worker (1 CPU, ``worker_node`` resource); torn down even on failure."""
    with LoopbackCluster.create() as c:
        c.start_head(num_cpus=1)
        c.add_worker(num_cpus=1, resources={WORKER_RESOURCE: 1})
        yield c


def node_ids(cluster: LoopbackCluster) -> tuple[str, str]:
    """(head node id, worker node id) from ``ray.nodes()``."""
    nodes = cluster.alive_nodes()
    assert len(nodes) == 2, nodes
    workers = [n["node_id"] for n in nodes if WORKER_RESOURCE in n["resources"]]
    heads = [n["node_id"] for n in nodes if WORKER_RESOURCE not in n["resources"]]
    assert len(workers) == 1 and len(heads) == 1, nodes
    assert {n["ip"] for n in nodes} == {LOOPBACK_IP}
    return heads[0], workers[0]


def search_command(cluster: LoopbackCluster, space: Path, storage: Path) -> list[str]:
    """``tune-grid search SPACE --address HEAD --storage SHARED --no-eval`` (the main CLI)."""
    return [
        sys.executable,
        "-m",
        "tune_grid.cli",
        "search",
        str(space),
        "--address",
        cluster.address,
        "--storage",
        str(storage),
        "--no-eval",
    ]


def write_space(cluster: LoopbackCluster, **changes: Any) -> Path:
    data = {**TINY_CLUSTER_SEARCH, **changes}
    path = cluster.root / f"{data['experiment']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def read_table(path: Path) -> list[dict[str, Any]]:
    return pq.read_table(path).to_pylist()


def test_search_spreads_trials_over_both_nodes(cluster: LoopbackCluster) -> None:
    """Four 1-CPU trials, two at a time, on two 1-CPU nodes: both nodes run trials. Meanwhile a
    driver with a wrong token is turned away (token auth is really on)."""
    head_id, worker_id = node_ids(cluster)
    storage = cluster.root / "shared"  # the "shared filesystem" every node writes to
    space = write_space(cluster)
    intruder_log = cluster.root / "wrong_token.log"
    intruder = cluster.popen(
        [sys.executable, "-c", f"import ray; ray.init(address={cluster.address!r})"],
        intruder_log,
        env={"RAY_AUTH_TOKEN": "0" * 64},  # takes precedence over RAY_AUTH_TOKEN_PATH
    )

    result = cluster.run(search_command(cluster, space, storage), timeout_s=240, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout[-6000:]
    assert intruder.wait(timeout=60) != 0
    assert "InvalidAuthToken" in intruder_log.read_text(errors="replace"), _tail(intruder_log)

    results = storage / "cluster_spread"
    trials = read_table(results / "trials.parquet")
    assert len(trials) == TINY_CLUSTER_SEARCH["num_samples"]
    assert {t["status"] for t in trials} == {"TERMINATED"}
    assert all(t["iterations"] == 3 for t in trials)
    assert {t["node_id"] for t in trials} == {head_id, worker_id}
    assert {t["node_ip"] for t in trials} == {LOOPBACK_IP}
    per_node = {n: sum(t["node_id"] == n for t in trials) for n in (head_id, worker_id)}
    print(f"\ntrials per node: head {per_node[head_id]}, worker {per_node[worker_id]}")
    # Each trial stayed on one node for all its iterations.
    rows = read_table(results / "iterations.parquet")
    for trial in trials:
        nodes = {r["node_id"] for r in rows if r["trial_id"] == trial["trial_id"]}
        assert nodes == {trial["node_id"]}


def test_search_survives_losing_the_worker_node(cluster: LoopbackCluster) -> None:
    """Kill the worker node (SIGKILL, like a lost machine) while a trial runs on it: the search
    still ends, every trial is TERMINATED or ERROR, and the lost trial continues on the head from
    its last checkpoint (iterations 1..N, each exactly once)."""
    head_id, worker_id = node_ids(cluster)
    # Long enough that a worker trial's early rows reach the Parquet parts (flushed every 2 s,
    # in steps where Tune saved its state) well before it ends, however fast the machine: at 20
    # iterations a worker trial once finished (~8 s) before any of its rows was seen.
    stop, samples = 60, 3
    storage = cluster.root / "shared"
    space = write_space(
        cluster,
        experiment="cluster_failover",
        num_samples=samples,
        stop={"training_iteration": stop},
    )
    results = storage / "cluster_failover"
    log = cluster.root / "failover_driver.log"
    driver = cluster.popen(search_command(cluster, space, storage), log, cwd=REPO_ROOT)
    lost_trial, killed_after = None, None
    try:
        deadline = time.monotonic() + 180
        while lost_trial is None and time.monotonic() < deadline and driver.poll() is None:
            lost_trial, killed_after = _trial_running_on(results, worker_id, stop)
            if lost_trial is None:
                time.sleep(0.2)
        assert lost_trial is not None, "no trial reported from the worker node:\n" + _tail(log)
        cluster.kill_node(cluster.nodes[-1])
        code = driver.wait(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert code == 0, _tail(log)
    print(f"\nworker node killed after trial {lost_trial} reported iteration {killed_after}")

    assert [n["node_id"] for n in cluster.alive_nodes()] == [head_id]
    trials = read_table(results / "trials.parquet")
    assert len(trials) == samples
    assert len({t["trial_id"] for t in trials}) == len(trials)
    assert {t["status"] for t in trials} <= FINAL_STATUSES, trials
    by_id = {t["trial_id"]: t for t in trials}
    assert by_id[lost_trial]["status"] == "TERMINATED"
    assert by_id[lost_trial]["iterations"] == stop
    assert by_id[lost_trial]["node_id"] == head_id

    rows = [r for r in read_table(results / "iterations.parquet") if r["trial_id"] == lost_trial]
    assert sorted(r["iteration"] for r in rows) == list(range(1, stop + 1))
    on_worker = [r["iteration"] for r in rows if r["node_id"] == worker_id]
    on_head = [r["iteration"] for r in rows if r["node_id"] == head_id]
    assert on_worker and on_head and max(on_worker) < min(on_head), (on_worker, on_head)
    print(f"trial {lost_trial}: iterations {on_worker} on the worker, {on_head} on the head")


def _trial_running_on(results: Path, node_id: str, stop: int) -> tuple[str | None, int | None]:
    """A trial that reported from ``node_id`` and has iterations left (``None`` if none yet).

    Reads the base file and the part files after it: the base file is merged only now and then.
    """
    from tune_grid.results.parts import read_merged

    try:
        rows = read_merged(results, "iterations").to_pylist()
    except Exception:  # noqa: BLE001 - none written yet, or being replaced; read it next time
        return None, None
    last: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["trial_id"] not in last or row["iteration"] > last[row["trial_id"]]["iteration"]:
            last[row["trial_id"]] = row
    for trial_id, row in last.items():
        if row["node_id"] == node_id and row["iteration"] <= stop - 3:
            return trial_id, int(row["iteration"])
    return None, None


def _tail(path: Path, chars: int = 6000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""
