"""A trained RLModule as a tune-grid policy: observation dict -> action dict, deterministic."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tune_grid.grid.devices import MICROGRIDS
from tune_grid.training.checkpoints import META_FILE, CheckpointError, first_line, read_meta
from tune_grid.training.ppo import SHARED_MODULE_ID, module_for_agent, module_ids

RL_MODULE_SUBDIR = Path("learner_group") / "learner" / "rl_module"
"""Where RLlib stores the learner's MultiRLModule inside an algorithm checkpoint."""


class TrainedPolicy:
    """Acts with the mean of each agent's Gaussian (no exploration noise), clipped to [-1, 1].

    Agents sharing a module are batched into one forward pass. Usable anywhere a baseline is, e.g.
    ``tune_grid.env.evaluation.evaluate(TrainedPolicy.load(path), split="test")``.
    """

    def __init__(self, modules: Mapping[str, Any], policy_sharing: str) -> None:
        self.modules = dict(modules)
        self.policy_sharing = policy_sharing
        for module in self.modules.values():
            if isinstance(module, torch.nn.Module):
                module.eval()

    @classmethod
    def load(cls, checkpoint: str | Path, policy_sharing: str | None = None) -> TrainedPolicy:
        """Load the learner's modules from an algorithm checkpoint (no Ray cluster needed).

        ``policy_sharing`` comes from tune-grid's metadata when present; for a plain RLlib
        checkpoint (e.g. one written by Tune) it is inferred from the module ids unless given.
        """
        from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule
        from ray.rllib.core.rl_module.rl_module import RLModule

        path = Path(checkpoint)
        if not path.is_dir():
            raise CheckpointError(f"checkpoint {path}: no such checkpoint folder")
        module_path = path / RL_MODULE_SUBDIR
        if not module_path.is_dir():
            raise CheckpointError(f"checkpoint {path}: no RLModule under {RL_MODULE_SUBDIR}")
        if policy_sharing is None and (path / META_FILE).exists():
            policy_sharing = read_meta(path).run_config.policy_sharing
        try:
            multi = RLModule.from_checkpoint(str(module_path.resolve()))
        except Exception as exc:  # noqa: BLE001 - unpickling errors mean a corrupt checkpoint
            raise CheckpointError(
                f"checkpoint {path}: cannot load RLModule ({first_line(exc)})"
            ) from exc
        if not isinstance(multi, MultiRLModule):
            raise CheckpointError(f"checkpoint {path}: {type(multi).__name__}, not a MultiRLModule")
        modules = {mid: multi[mid] for mid in list(multi.keys())}
        if policy_sharing is None:
            policy_sharing = "shared" if SHARED_MODULE_ID in modules else "independent"
        return cls(modules, policy_sharing)

    @classmethod
    def from_algorithm(cls, algo: Any, policy_sharing: str) -> TrainedPolicy:
        """Wrap a live Algorithm's (local, weight-synced) modules, e.g. inside a Tune trial."""
        return cls(
            {mid: algo.get_module(mid) for mid in module_ids(policy_sharing)}, policy_sharing
        )

    def __call__(self, observations: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        by_module: dict[str, list[str]] = {}
        for agent in observations:
            by_module.setdefault(module_for_agent(self.policy_sharing, agent), []).append(agent)
        actions: dict[str, np.ndarray] = {}
        for module_id, agents in by_module.items():
            obs = np.stack([np.asarray(observations[a], dtype=np.float32) for a in agents])
            batch = self._greedy(module_id, obs)
            for agent, action in zip(agents, batch, strict=True):
                actions[agent] = action
        return actions

    def act_batch(self, observations: np.ndarray) -> np.ndarray:
        """Actions ``(envs, agents, 3)`` for observations ``(envs, agents, features)`` of
        many envs, agents in ``MICROGRIDS`` order: one forward pass per module."""
        envs, agents, features = observations.shape
        obs = np.ascontiguousarray(observations, dtype=np.float32)
        if self.policy_sharing == "shared":
            flat = self._greedy(SHARED_MODULE_ID, obs.reshape(envs * agents, features))
            return flat.reshape(envs, agents, -1)
        columns = [
            self._greedy(module_for_agent(self.policy_sharing, agent), obs[:, i])
            for i, agent in enumerate(MICROGRIDS[:agents])
        ]
        return np.stack(columns, axis=1)

    def _greedy(self, module_id: str, obs: np.ndarray) -> np.ndarray:
        """The mean action of ``module_id`` for a (rows, features) batch, clipped to [-1, 1]."""
        module = self.modules[module_id]
        with torch.no_grad():
            out = module.forward_inference({"obs": torch.from_numpy(obs)})
            dist = module.get_inference_action_dist_cls().from_logits(out["action_dist_inputs"])
            actions = dist.to_deterministic().sample().cpu().numpy()
        return np.clip(actions, -1.0, 1.0).astype(np.float32)
