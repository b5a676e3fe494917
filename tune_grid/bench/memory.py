"""``tune-grid bench memory``: peak memory of one trial process, measured, next to the request.

Each configuration runs in a fresh Python process that does what a search trial's process does
(:func:`tune_grid.search.run.trainable.train_trial`): import Ray, RLlib and tune-grid, build one PPO
algorithm per seed (envs sampled in the process, ``num_env_runners: 0``), train each for
``iterations`` iterations and save one checkpoint of all seeds. The process's peak resident set
size (``getrusage(RUSAGE_SELF).ru_maxrss``) is printed next to the memory a trial of that
configuration requests from Ray (:data:`tune_grid.search.run.resources.MEASURED`), which must be at
least as large.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tune_grid.config import ConfigError
from tune_grid.search.run.resources import MEASURED, run_config_of

GIB = 1024**3
_PROBE = textwrap.dedent(
    """
    import json, resource, sys, tempfile, pathlib
    import ray
    config, seeds, iterations = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    from tune_grid.config import RunConfig
    from tune_grid.training.checkpoints import CheckpointMeta, save_checkpoint
    from tune_grid.training.algorithms import check_run
    from tune_grid.training.rllib_env import register_rllib_env
    register_rllib_env()
    run = RunConfig.from_dict(config)
    runs = [run.replace(seed=run.seed + k) for k in range(seeds)]
    algos = [check_run(r).build_config(r).build_algo() for r in runs]
    built = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    for _ in range(iterations):
        for algo in algos:
            algo.train()
    with tempfile.TemporaryDirectory() as tmp:
        for k, (algo, r) in enumerate(zip(algos, runs)):
            meta = CheckpointMeta(run_name=f"probe{k}", run_config=r, iteration=iterations,
                                  env_steps=0, time_total_s=0.0)
            save_checkpoint(algo, pathlib.Path(tmp) / f"seed_{k}", meta)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("PROBE=" + json.dumps({"built": built, "peak": peak}))
    """
)

_SMALL = {"train_batch_size": 1920, "hidden_sizes": [64, 64], "policy_sharing": "shared"}
_LARGE = {
    "train_batch_size": 7680,
    "hidden_sizes": [256, 256, 256],
    "policy_sharing": "independent",
}
DEFAULT_CASES: tuple[tuple[dict[str, Any], int], ...] = (
    ({**_SMALL, "num_envs_per_env_runner": 4}, 1),
    (_SMALL, 1),
    (_SMALL, 3),
    (_LARGE, 1),
    (_LARGE, 3),
)
"""(run config, seeds): envs (4 vs 32), seeds (1 vs 3), batch and network (full.yaml's smallest
and largest trials)."""
FULL_FIXED = {"num_env_runners": 0, "num_envs_per_env_runner": 32, "torch_threads": 1}
PROBE_TRAINING = {"minibatch_size": 512, "num_epochs": 1}
"""Epochs and minibatch do not change what is held in memory, only how long it takes."""


def measure_peak_rss(config: Mapping[str, Any], seeds: int, iterations: int = 1) -> dict[str, int]:
    """Peak RSS in bytes (``built``: after building the algorithms; ``peak``: at the end)."""
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(dict(config)), str(seeds), str(iterations)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    for line in result.stdout.splitlines():
        if line.startswith("PROBE="):
            return {k: int(v) for k, v in json.loads(line.removeprefix("PROBE=")).items()}
    tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
    raise RuntimeError("memory probe failed: " + " | ".join(tail))


def run_memory_benchmark(
    cases: Sequence[tuple[Mapping[str, Any], int]] = DEFAULT_CASES,
    iterations: int = 1,
    print_fn: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Measure every case and print measured peak vs requested memory."""
    print_fn(
        f"{'seeds':>5} {'envs':>4} {'batch':>6} {'hidden':>12} {'sharing':>11} "
        f"{'built GiB':>10} {'peak GiB':>9} {'request GiB':>12} {'request/peak':>13}"
    )
    rows = []
    for config, seeds in cases:
        full = {**FULL_FIXED, **PROBE_TRAINING, **dict(config)}
        measured = measure_peak_rss(full, seeds, iterations)
        request = MEASURED.trial_process_bytes(run_config_of(full), seeds)
        hidden = "x".join(str(h) for h in full["hidden_sizes"])
        print_fn(
            f"{seeds:>5} {full['num_envs_per_env_runner']:>4} {full['train_batch_size']:>6} "
            f"{hidden:>12} {full['policy_sharing']:>11} {measured['built'] / GIB:>10.2f} "
            f"{measured['peak'] / GIB:>9.2f} {request / GIB:>12.2f} "
            f"{request / measured['peak']:>13.2f}"
        )
        rows.append({"config": full, "seeds": seeds, **measured, "request": request})
    return rows


def add_bench_memory_parser(subparsers: Any) -> Any:
    """Add ``memory`` to the ``bench`` subparsers (``tune-grid bench memory``)."""
    parser = subparsers.add_parser(
        "memory", help="peak memory of a trial process vs the memory its trials request"
    )
    parser.add_argument(
        "--iterations", type=int, default=1, metavar="N", help="training iterations per seed"
    )

    def handler(args: Any) -> int:
        if args.iterations < 1:
            raise ConfigError(f"--iterations must be >= 1, got {args.iterations}")
        run_memory_benchmark(iterations=args.iterations)
        return 0

    parser.set_defaults(func=handler)
    return parser


__all__ = ["add_bench_memory_parser", "measure_peak_rss", "run_memory_benchmark"]
