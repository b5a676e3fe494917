"""MicrogridBatch: many envs stepped in one compiled call, bit-identical to the env's own step."""

from __future__ import annotations

import numpy as np
import pytest

from tune_grid.env import make_env
from tune_grid.env.batch import MicrogridBatch, can_batch
from tune_grid.grid.devices import MICROGRIDS


def _pair(n: int, **config: object) -> tuple[list, MicrogridBatch]:
    """``n`` reference envs and a batch over ``n`` more of the same config."""
    return [make_env(**config) for _ in range(n)], MicrogridBatch(
        [make_env(**config) for _ in range(n)]
    )


def _assert_same_step(reference: tuple, batch_step, i: int) -> None:  # noqa: ANN001
    obs, rewards, terminations, _, infos = reference
    for j, agent in enumerate(MICROGRIDS):
        np.testing.assert_array_equal(batch_step.observations[i, j], obs[agent])
        assert batch_step.rewards[i][j] == rewards[agent]
        assert batch_step.infos[i][j] == infos[agent]
    assert bool(batch_step.done[i]) == terminations[MICROGRIDS[0]]


@pytest.mark.parametrize("config", [{}, {"share_reward": True, "initial_soc": None}])
def test_batch_steps_are_bit_identical_to_env_steps(config: dict) -> None:
    """Two days of random actions (beyond [-1, 1], so clipping runs) on 5 envs with their own
    days and seeds, two of them idle every third hour: the same observations, rewards, infos
    (every key, day totals included) and episode ends as stepping each env alone."""
    n = 5
    reference, batch = _pair(n, **config)
    rng = np.random.default_rng(7)
    for day in range(2):
        for i in range(n):
            obs_ref, info_ref = reference[i].reset(seed=10 * day + i)
            obs_bat, info_bat = batch.reset(i, seed=10 * day + i)
            assert info_bat == info_ref
            for agent in MICROGRIDS:
                np.testing.assert_array_equal(obs_bat[agent], obs_ref[agent])
        hours_done = np.zeros(n, dtype=int)
        step = 0
        while (hours_done < 24).any():
            stepping = hours_done < 24
            if step % 3 == 0:
                stepping[[1, 3]] = False
            actions = rng.uniform(-1.3, 1.3, size=(n, len(MICROGRIDS), 3))
            result = batch.step(actions, stepping)
            for i in np.flatnonzero(stepping):
                ref = reference[i].step(dict(zip(MICROGRIDS, actions[i], strict=True)))
                _assert_same_step(ref, result, i)
            for i in np.flatnonzero(~stepping):
                assert result.rewards[i] is None and result.infos[i] is None
            hours_done += stepping
            step += 1
        last = np.flatnonzero(stepping)
        assert result.done[last].all()
        assert all("day_cost" in info for info in result.infos[last[0]])


def test_a_diverged_power_flow_is_settled_like_the_env_does() -> None:
    """Loads a thousand times too large make the Z-bus iteration diverge in one env: it is
    charged ``nonconvergence_safety`` with the lossless exchange exactly as the env is, while
    its neighbour in the batch converges as usual; both recover after a reset."""
    reference, batch = _pair(2, nonconvergence_safety=2.5)
    for i in range(2):
        reference[i].reset(seed=i)
        batch.reset(i, seed=i)
    reference[0]._load_p *= 1000.0
    batch._load_p[0] *= 1000.0
    actions = np.zeros((2, len(MICROGRIDS), 3))
    result = batch.step(actions, np.ones(2, dtype=bool))
    for i in range(2):
        _assert_same_step(
            reference[i].step(dict(zip(MICROGRIDS, actions[i], strict=True))), result, i
        )
    assert [info["converged"] for info in result.infos[0]] == [False] * 3
    assert [info["safety"] for info in result.infos[0]] == [2.5] * 3
    assert all(info["converged"] for info in result.infos[1])
    assert np.isfinite(result.observations).all()
    reference[0].reset(seed=5)
    batch.reset(0, seed=5)
    result = batch.step(actions, np.array([True, False]))
    _assert_same_step(reference[0].step(dict(zip(MICROGRIDS, actions[0], strict=True))), result, 0)
    assert all(info["converged"] for info in result.infos[0])


def test_only_hook_free_fast_configs_batch() -> None:
    assert can_batch(make_env())
    for config in (
        {"powerflow": "pandapower"},
        {"vertical_protocol": "price_signal"},
        {"horizontal_protocol": "p2p_trading"},
    ):
        env = make_env(**config)
        assert not can_batch(env)
        with pytest.raises(ValueError, match="cannot be batched: batching needs powerflow 'fast'"):
            MicrogridBatch([make_env(), env])
    with pytest.raises(ValueError, match="share one EnvConfig"):
        MicrogridBatch([make_env(), make_env(penalty=2.0)])
    with pytest.raises(ValueError, match="at least one env"):
        MicrogridBatch([])


def test_bad_batch_steps_raise_clear_errors() -> None:
    _, batch = _pair(2)
    with pytest.raises(RuntimeError, match=r"envs \[0, 1\] finished their day \(or were never"):
        batch.step(np.zeros((2, len(MICROGRIDS), 3)), np.ones(2, dtype=bool))
    for i in range(2):
        batch.reset(i, seed=i)
    actions = np.zeros((2, len(MICROGRIDS), 3))
    actions[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match="actions for env 1 MG3 contain NaN or inf"):
        batch.step(actions, np.ones(2, dtype=bool))
    batch.step(actions, np.array([True, False]))  # env 1 idles: its NaN is never read
    with pytest.raises(ValueError, match=r"actions must have shape \(2, 3, 3\)"):
        batch.step(np.zeros((2, 3)), np.ones(2, dtype=bool))
    for _ in range(23):
        batch.step(np.zeros_like(actions), np.array([True, False]))
    with pytest.raises(
        RuntimeError, match=r"envs \[0\] finished their day \(or were never reset\)"
    ):
        batch.step(np.zeros_like(actions), np.array([True, False]))
