"""An exploit as the trainable does it, on real RLlib learners: a trial restarts with new values
from another trial's checkpoint (two seeds). The new values must reach every seed's learner (read
from the optimizer and the loss while it trains), and the weights must be the other trial's."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from tune_grid.config import RunConfig

pytestmark = pytest.mark.slow

TINY = {
    "train_batch_size": 96,
    "minibatch_size": 48,
    "num_epochs": 1,
    "hidden_sizes": [16, 16],
    "num_env_runners": 0,
    "num_envs_per_env_runner": 2,
}
DONOR = {"lr": 1e-3, "clip_param": 0.2, "entropy_coeff": 0.0, "gamma": 0.99, "lambda_": 0.95}
NEW = {
    "lr": 3e-4,
    "clip_param": 0.35,
    "entropy_coeff": 0.005,
    "vf_loss_coeff": 0.5,
    "vf_clip_param": 5.0,
    "gamma": 0.97,
    "lambda_": 0.9,
    "grad_clip": 2.0,
}
SEEDS = 2


def _runs(values: dict[str, Any]) -> list[RunConfig]:
    run = RunConfig.from_dict({**TINY, **values})
    return [run.replace(seed=run.seed + k) for k in range(SEEDS)]


def _learner(algo: Any) -> Any:
    return algo.learner_group._learner


def _weights(algo: Any) -> dict[str, torch.Tensor]:
    state = _learner(algo).module.get_state()
    return {
        f"{mid}/{name}": torch.as_tensor(value).clone()
        for mid, params in state.items()
        for name, value in params.items()
    }


def _spy(learner: Any) -> dict[str, list[float]]:
    """Record what the learner uses while it trains: each optimizer's lr at every step, and the
    loss settings the loss function is called with."""
    seen: dict[str, list[float]] = {"lr": [], "clip_param": [], "vf_loss_coeff": []}
    seen.update(entropy_coeff=[], vf_clip_param=[], grad_clip=[])
    for optimizer in learner._named_optimizers.values():
        optimizer.register_step_pre_hook(
            lambda opt, args, kwargs: seen["lr"].extend(g["lr"] for g in opt.param_groups)
        )

    def record(module_id: str, config: Any) -> None:
        for key in ("clip_param", "vf_loss_coeff", "vf_clip_param", "grad_clip"):
            seen[key].append(getattr(config, key))
        scheduler = learner.entropy_coeff_schedulers_per_module[module_id]
        seen["entropy_coeff"].append(float(scheduler.get_current_value()))

    if hasattr(learner, "_coefficients"):
        # The lean learner: its written-out gradients and its autograd loss both take the loss
        # settings from here, once per module and minibatch.
        coefficients = learner._coefficients

        def spied_coefficients(module_id: str, config: Any) -> Any:
            record(module_id, config)
            return coefficients(module_id, config)

        learner._coefficients = spied_coefficients
        return seen
    compute = learner.compute_loss_for_module

    def spied(*, module_id: str, config: Any, batch: Any, fwd_out: Any) -> Any:
        record(module_id, config)
        return compute(module_id=module_id, config=config, batch=batch, fwd_out=fwd_out)

    learner.compute_loss_for_module = spied
    return seen


@pytest.fixture(scope="module")
def donor(ray_session: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """A trial of two seeds after one iteration, saved as the trainable saves it."""
    from tune_grid.results.trial_state import TrialState
    from tune_grid.search.run.trainable import _save
    from tune_grid.training.seed_group import SeedGroup

    group = SeedGroup(_runs(DONOR))
    per_seed = group.train()
    directory = tmp_path_factory.mktemp("donor")
    _save(directory, group, TrialState(iteration=1), "donor", per_seed)
    weights = [_weights(algo) for algo in group.algos]
    group.stop()
    return directory, weights


def test_a_restore_alone_keeps_the_checkpoints_learning_rate(donor: tuple[Path, list]) -> None:
    """What the fix is for: RLlib's restore loads the optimizer's lr from the checkpoint."""
    from tune_grid.training.ppo import build_ppo_config

    directory, _ = donor
    algo = build_ppo_config(_runs(NEW)[0]).build_algo()
    try:
        algo.restore_from_path(str(directory / "seed_0"))
        lrs = {g["lr"] for o in _learner(algo)._named_optimizers.values() for g in o.param_groups}
        assert lrs == {DONOR["lr"]}
    finally:
        algo.stop()


def test_after_an_exploit_every_seeds_learner_uses_the_new_values(
    donor: tuple[Path, list],
) -> None:
    from tune_grid.search.run.trainable import _restore
    from tune_grid.training.algorithms import HP_PREFIX, hyperparameter_columns
    from tune_grid.training.hyperparams import HyperparameterError, read_hyperparameters

    directory, donor_weights = donor
    from tune_grid.training.seed_group import SeedGroup

    group = SeedGroup(_runs(NEW))
    algos = group.algos
    try:
        state = _restore(directory, group)
        assert state.iteration == 1 and state.restores == 1
        for k, algo in enumerate(algos):
            # The exploiting trial continues from the other trial's weights, seed by seed.
            weights = _weights(algo)
            assert weights.keys() == donor_weights[k].keys()
            for name, value in weights.items():
                assert torch.equal(value, donor_weights[k][name]), (k, name)
        first, second = (list(w.values()) for w in donor_weights)
        assert not all(torch.equal(a, b) for a, b in zip(first, second, strict=True)), (
            "the two seeds' weights should differ"
        )

        spies = [_spy(_learner(algo)) for algo in algos]
        for algo in algos:  # the default path: gradients written out, not autograd's
            learner = _learner(algo)
            modules = tuple(learner.module.keys())
            assert all(learner._mlp_plan(mid) is not None for mid in modules)
        for algo in algos:
            algo.train()
        for k, (algo, seen) in enumerate(zip(algos, spies, strict=True)):
            learner = _learner(algo)
            assert seen["lr"] and set(seen["lr"]) == {NEW["lr"]}, (k, seen["lr"])
            for key in ("clip_param", "vf_loss_coeff", "vf_clip_param", "grad_clip"):
                assert seen[key] and set(seen[key]) == {NEW[key]}, (k, key, seen[key])
            assert set(seen["entropy_coeff"]) == {NEW["entropy_coeff"]}, k
            gae = [c for c in learner._learner_connector.connectors if hasattr(c, "lambda_")]
            assert [(c.gamma, c.lambda_) for c in gae] == [(NEW["gamma"], NEW["lambda_"])]
            lrs = {g["lr"] for o in learner._named_optimizers.values() for g in o.param_groups}
            assert lrs == {NEW["lr"]}, k  # also after RLlib's post-update lr reset
            read = read_hyperparameters(algo)
            assert all(math.isclose(read[key], NEW[key]) for key in NEW), read
        columns = hyperparameter_columns(algos, group.runs[0])
        assert columns[HP_PREFIX + "lr"] == NEW["lr"]
        assert columns[HP_PREFIX + "clip_param"] == NEW["clip_param"]
        # Seeds whose learners disagree are reported, not averaged.
        learner = _learner(algos[1])
        for optimizer in learner._named_optimizers.values():
            learner._set_optimizer_lr(optimizer, 5e-4)
        with pytest.raises(HyperparameterError, match="seeds disagree on lr"):
            hyperparameter_columns(algos, group.runs[0])
    finally:
        for algo in algos:
            algo.stop()
