"""Oracle days solved as Ray tasks, spread over the CPUs of the running Ray (local or cluster).

A day takes seconds to solve and is cached on disk by the process that solves it, so a search
driver solves the days its trials and its held-out evaluation need in parallel, once.
"""

from __future__ import annotations

from typing import Any


def solve_on_ray(days: list[int], config: Any) -> list[dict[str, Any]]:
    """The oracle's rows of ``days`` of ``config.split``, one Ray task (one CPU) per day; solved
    in this process when no Ray is running."""
    import ray

    from tune_grid.training.validation import solve_days

    if not ray.is_initialized():
        return solve_days(days, config)
    task = ray.remote(num_cpus=1)(solve_days)
    return [row for rows in ray.get([task.remote([d], config) for d in days]) for row in rows]


def mpc_on_ray(days: list[int], config: Any, forecaster: str) -> None:
    """Run the MPC on ``days`` of ``config.split`` as Ray tasks (one CPU per day), skipping days
    already cached or shipped, and store every result in this process's disk cache (a task on
    another node caches on its own disk); in this process when no Ray is running."""
    import ray

    from tune_grid.oracle.mpc import mpc_day, mpc_day_is_stored, store_record

    todo = [d for d in days if not mpc_day_is_stored(config.split, d, config, forecaster)]
    if not todo:
        return
    if not ray.is_initialized():
        for d in todo:
            mpc_day(config.split, d, config, forecaster=forecaster)
        return
    task = ray.remote(num_cpus=1)(_mpc_task)
    for key, record in ray.get([task.remote(d, config, forecaster) for d in todo]):
        store_record(key, record)


def _mpc_task(day: int, config: Any, forecaster: str) -> tuple[str, dict[str, Any]]:
    from tune_grid.oracle.mpc import mpc_day

    keep: dict[str, Any] = {}
    mpc_day(config.split, day, config, forecaster=forecaster, keep=keep)
    ((key, result),) = keep.items()
    return key, result.to_json()
