"""The tiny run and search settings tests share (seconds per trial, not a measurement), and how
tests look inside an algorithm built from them."""

from __future__ import annotations

from typing import Any

TINY_RUN: dict[str, Any] = {
    "minibatch_size": 32,
    "num_epochs": 1,
    "hidden_sizes": [16, 16],
    "num_env_runners": 0,
    "num_envs_per_env_runner": 4,
    "eval_interval": 96,
    "val_days": 2,
}
"""Run-config keys of a tiny trial: a 16x16 network, 4 envs, validated every 96 env steps on 2
validation days."""


def tiny_search(**changes: Any) -> dict[str, Any]:
    """A tiny search file (random search, FIFO, 2 trials of 192 env steps, no oracle, no
    held-out evaluation) with ``changes`` applied at the top level."""
    return {
        "experiment": "tiny",
        "fixed": {**TINY_RUN, "train_batch_size": 96},
        "space": {
            "lr": {"type": "loguniform", "low": 1.0e-4, "high": 1.0e-2},
            "policy_sharing": {"type": "choice", "values": ["shared", "independent"]},
        },
        "search": {"algorithm": "random", "seed": 0},
        "scheduler": {"type": "fifo"},
        "num_samples": 2,
        "max_concurrent_trials": 2,
        "stop": {"env_steps": 192},
        "validation": {"oracle": False},
        "evaluation": {"enabled": False},
        **changes,
    }


def algo_modules(algo: Any) -> dict[str, Any]:
    """Every RLModule of a built algorithm, by ``learner/<module id>`` and ``runner/<module id>``
    (the learner's copy and the local env runner's)."""
    out = {}
    for where, modules in (
        ("learner", algo.learner_group._learner.module),
        ("runner", algo.env_runner.module),
    ):
        for mid in modules.keys():  # noqa: SIM118 - a MultiRLModule, not a dict
            out[f"{where}/{mid}"] = modules[mid]
    return out
