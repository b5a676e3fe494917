"""Typed, validated configurations: the environment's and a training run's.

Nothing heavy is imported here, so every layer (env, training, search, analysis) may use it.
Every config loads from a plain mapping with :meth:`from_dict`, which rejects unknown keys, wrong
types and out-of-range values with a :class:`ConfigError` (one line naming the key and what is
allowed). Types are checked by pydantic, as the search file's are (``search/spec/space_file.py``):
each value through a strict ``TypeAdapter`` of its field's annotation. The configs themselves
stay frozen dataclasses: flat, hashable, cheap to copy, and their field docstrings are the
command line's help.

``RunConfig`` is flat on purpose: environment keys (``penalty``, ``share_reward``...) sit beside the
PPO keys, so a search space or a CLI flag names every parameter the same way.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import json
import operator
import textwrap
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Self

from pydantic import BeforeValidator, ConfigDict, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

from tune_grid.errors import TuneGridError

PowerflowBackend = Literal["fast", "lightsim2grid", "pandapower"]
Split = Literal["train", "validation", "test"]
PolicySharing = Literal["shared", "independent"]
Critic = Literal["local", "centralized"]
TrainingLoop = Literal["lean", "rllib"]
ActionSquash = Literal["clip", "tanh"]
VerticalProtocol = Literal["none", "price_signal", "setpoint"]
HorizontalProtocol = Literal["none", "p2p_trading", "consensus"]
ConsensusTopology = Literal["line", "ring", "complete"]
TerminalSoc = Literal["settle", "free"]


class ConfigError(TuneGridError, ValueError):
    """A configuration value is unknown, mistyped or out of range."""


def _allowed_text(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _integral(value: Any) -> Any:
    """An integral float (``4000.0`` from YAML or JSON) as the int it is."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _sizes(value: Any) -> Any:
    """Layer widths: ``"256x256"`` or ``"256,256"`` from a command line, or a non-empty list."""
    if isinstance(value, str):
        parts = [v.strip() for v in value.replace("x", ",").split(",")]
        if not parts or not all(p.isdigit() for p in parts):
            raise PydanticCustomError(
                "sizes", "expected sizes like 256x256, got {value}", {"value": repr(value)}
            )
        return tuple(int(p) for p in parts)
    if not isinstance(value, list | tuple) or not value:
        raise PydanticCustomError(
            "sizes", "expected a non-empty list, got {value}", {"value": repr(value)}
        )
    return tuple(value)


def _pydantic_type(tp: Any) -> Any:
    """The type pydantic validates a field of annotation ``tp`` as: ``int`` takes integral
    floats, a tuple of sizes takes ``256x256`` and lists (strict mode takes neither)."""
    if tp is int:
        return Annotated[int, BeforeValidator(_integral)]
    origin = typing.get_origin(tp)
    if origin is tuple:
        (item, *_rest) = typing.get_args(tp)
        return Annotated[tuple[_pydantic_type(item), ...], BeforeValidator(_sizes)]  # type: ignore[misc]
    if origin in (typing.Union, types.UnionType):
        return functools.reduce(operator.or_, [_pydantic_type(t) for t in typing.get_args(tp)])
    return tp


PYDANTIC_EXPECTED = {
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "int_type": "an integer",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "finite_number": "a finite number",
}
"""pydantic's error types -> what a one-line message says was expected (run configs and search
files alike)."""


@functools.cache
def _adapter(tp: Any) -> TypeAdapter[Any]:
    strict = ConfigDict(strict=True, allow_inf_nan=False)
    return TypeAdapter(_pydantic_type(tp), config=strict)


def coerce_value(key: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against the annotation ``tp`` with pydantic (strict: no strings for
    numbers, no numbers for booleans) and normalise it; one line naming the key otherwise."""
    try:
        return _adapter(tp).validate_python(value)
    except ValidationError as exc:
        raise ConfigError(_one_line(key, exc, tp)) from None


def _one_line(key: str, exc: ValidationError, tp: Any) -> str:
    errors = exc.errors(include_url=False)
    # A union reports one error per member: the first that is not "not None" says most.
    err = next((e for e in errors if e["type"] != "none_required"), errors[0])
    where = key + "".join(f"[{part}]" for part in err["loc"] if isinstance(part, int))
    kind, value = err["type"], err.get("input")
    if kind == "literal_error":
        literal = next(
            (t for t in (tp, *typing.get_args(tp)) if typing.get_origin(t) is Literal), tp
        )
        return f"{where}: got {value!r}, allowed: {_allowed_text(literal)}"
    if kind in PYDANTIC_EXPECTED:
        return f"{where}: expected {PYDANTIC_EXPECTED[kind]}, got {value!r}"
    return f"{where}: {err['msg']}"


class _Validated:
    """Mixin of dataclasses: build from a mapping with type checks, then run ``validate``."""

    if TYPE_CHECKING:
        __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None = None, *, where: str = "") -> Self:
        values = dict(values or {})
        hints = typing.get_type_hints(cls)
        names = cls.field_names()
        unknown = sorted(set(values) - set(names))
        prefix = f"{where}: " if where else ""
        if unknown:
            raise ConfigError(
                f"{prefix}unknown {cls._kind()} key {unknown[0]!r}; allowed: {', '.join(names)}"
            )
        kwargs = {k: coerce_value(k, v, hints[k]) for k, v in values.items()}
        obj = cls(**kwargs)
        try:
            obj.validate()
        except ConfigError as exc:
            raise ConfigError(f"{prefix}{exc}") from None
        return obj

    @classmethod
    def _kind(cls) -> str:
        return "config"

    def validate(self) -> None:
        """Rules across fields; raises :class:`ConfigError` (none unless a subclass has some)."""

    def replace(self, **changes: Any) -> Self:
        merged = {**dataclasses.asdict(self), **changes}
        return type(self).from_dict(merged)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass(frozen=True)
class EnvConfig(_Validated):
    """Configuration of the networked-microgrid environment (see ``tune_grid.env``)."""

    powerflow: PowerflowBackend = "fast"
    """'fast' (compiled Z-bus), 'lightsim2grid' (Newton-Raphson) or 'pandapower' (the reference)."""
    split: Split = "train"
    """Data split the episodes are drawn from: 'train' (2023 less every 8th day), 'validation'
    (every 8th day of 2023: what searches rank trials on) or 'test' (2024: held out for the
    final report). See tune_grid.grid.data."""
    load_scale: float = 0.2
    """Multiplier on the feeders' nominal loads (0.2 as in the reference setup)."""
    penalty: float = 1.0
    """Reward weight of safety (voltage pu outside [0.95, 1.05] + line overload fraction): at 1.0
    one pu-hour of violation weighs like cost_scale ($100) of cost. With 10, PPO learned to
    remove every violation at twice the do-nothing cost; with 1 it cut both cost and violations."""
    cost_scale: float = 100.0
    """Reward = -cost / cost_scale - penalty * safety; cost in $ per hour."""
    share_reward: bool = False
    """Give every agent the mean reward of all agents (cooperative setting)."""
    export_discount: float = 0.9
    """Exported energy earns export_discount * LMP; imported energy pays the LMP."""
    initial_soc: float | None = 0.5
    """Battery state of charge at reset; None draws it uniformly from [0.2, 0.8]."""
    terminal_soc: TerminalSoc = "settle"
    """'settle': at midnight the battery's energy below the day's start is bought back and
    energy above it credited at the day's terminal price (tune_grid.economics); 'free': no
    terminal value (the v0 rule, which pays a policy for draining the battery: comparison only)."""
    price_lookahead: int = 4
    """Hours of day-ahead LMP beyond the current hour in the observation (0 to 23)."""
    nonconvergence_safety: float = 1.0
    """Safety charged to every agent in an hour whose AC power flow does not converge."""
    vertical_protocol: VerticalProtocol = "none"
    """DSO-microgrid coordination: 'none', 'price_signal' or 'setpoint'."""
    horizontal_protocol: HorizontalProtocol = "none"
    """Microgrid-microgrid coordination: 'none', 'p2p_trading' or 'consensus'."""
    congestion_price: float = 200.0
    """price_signal: $/MWh added per unit of feeder loading (max DSO line loading / 100) above
    ``congestion_threshold``."""
    congestion_threshold: float = 0.15
    """price_signal: max DSO line loading (fraction of rating) above which the adder applies."""
    setpoint_penalty_price: float = 100.0
    """setpoint: $/MWh charged on the absolute deviation from the DSO's exchange target."""
    consensus_iterations: int = 5
    """consensus: bound on neighbour-averaging rounds per step."""
    consensus_topology: ConsensusTopology = "line"
    """consensus: communication graph between MG1, MG2, MG3."""

    @classmethod
    def _kind(cls) -> str:
        return "env config"

    def validate(self) -> None:
        _require(
            0.0 < self.load_scale <= 2.0, f"load_scale must be in (0, 2], got {self.load_scale}"
        )
        _require(self.penalty >= 0.0, f"penalty must be >= 0, got {self.penalty}")
        _require(self.cost_scale > 0.0, f"cost_scale must be > 0, got {self.cost_scale}")
        _require(
            0.0 <= self.export_discount <= 1.0,
            f"export_discount must be in [0, 1], got {self.export_discount}",
        )
        if self.initial_soc is not None:
            _require(
                0.1 <= self.initial_soc <= 1.0,
                f"initial_soc must be in [0.1, 1.0] or null, got {self.initial_soc}",
            )
        _require(
            0 <= self.price_lookahead <= 23,
            f"price_lookahead must be in [0, 23] hours, got {self.price_lookahead}",
        )
        _require(
            self.nonconvergence_safety >= 0.0,
            f"nonconvergence_safety must be >= 0, got {self.nonconvergence_safety}",
        )
        _require(
            self.congestion_price >= 0.0,
            f"congestion_price must be >= 0, got {self.congestion_price}",
        )
        _require(
            0.0 <= self.congestion_threshold <= 2.0,
            f"congestion_threshold must be in [0, 2], got {self.congestion_threshold}",
        )
        _require(
            self.setpoint_penalty_price >= 0.0,
            f"setpoint_penalty_price must be >= 0, got {self.setpoint_penalty_price}",
        )
        _require(
            1 <= self.consensus_iterations <= 100,
            f"consensus_iterations must be in [1, 100], got {self.consensus_iterations}",
        )


@dataclass(frozen=True)
class TrainingFields(_Validated):
    """The PPO hyperparameters, layout and resources of a run: RunConfig without the env keys."""

    algorithm: str = "ppo"
    """The RL algorithm, an entry of tune_grid.training.algorithms (which says the keys each one
    reads): 'ppo', RLlib's PPO with tune-grid's options (MAPPO's centralized critic, value and
    observation normalization)."""
    policy_sharing: PolicySharing = "shared"
    """'shared': one RLModule for all agents (parameter sharing); 'independent': one per agent.
    Orthogonal to ``critic``: shared + centralized is MAPPO, independent + local is IPPO."""
    critic: Critic = "local"
    """What each module's value function sees: 'local' (its agent's own observation, RLlib's
    default PPO module) or 'centralized' (the global state: the agent's own observation, then
    every agent's in the fixed order MG1, MG2, MG3; tune_grid.training.critic). Actors always
    see only their own observation, so a trained policy still acts from local observations."""
    value_norm: bool = False
    """MAPPO's value normalization: the value head learns returns standardized by a running
    mean and std of the value targets, and GAE reads its denormalized output. Recommended with
    the centralized critic (Yu et al. 2022); off by default so the local critic stays RLlib's
    default module."""
    initial_log_std: float | None = -1.0
    """Initial log standard deviation of the Gaussian policy: added to the bias of the policy
    head's log-std outputs when the module is built. The default -1 starts at std 0.37, chosen
    by measurement (docs/search.md: separated from RLlib's initialization at 40k, 80k and 160k
    env steps; Andrychowicz et al. 2021 also found a lower initial std to matter for
    continuous-control PPO). None (null) keeps RLlib's initialization and module (log-std near
    0: std about 1 on actions in [-1, 1], so early actions clip often and the diesel's on/off
    switch flips at random)."""
    action_squash: ActionSquash = "clip"
    """How Gaussian samples become actions in [-1, 1]: 'clip' (RLlib's default: the env clips
    them, so a wide policy acts on the bounds often) or 'tanh' (a tanh-squashed Gaussian whose
    actions stay inside the bounds, with the log-probability's tanh correction;
    tune_grid.training.tanh_gaussian)."""
    obs_norm: bool = False
    """Normalize each observation feature by its running mean and standard deviation over every
    observation trained on, clipped to [-10, 10] (tune_grid.training.obs_norm), inside the
    policy module so checkpoints and evaluation carry it. False: the fixed scales of the feature
    table only (RLlib's module, the behaviour before the key existed)."""
    reward_scale: float = 1.0
    """Factor on every reward the learner sees, before GAE (tune_grid.training.reward_scale):
    advantages, value targets and the value loss (and vf_clip_param, in reward units) scale with
    it; the env, its metrics and the objective do not. 1.0: no scaling."""
    lr: float = 5e-5
    """Adam learning rate of policy and value function (the initial one with ``lr_final``)."""
    lr_final: float | None = None
    """Learning rate reached after ``lr_decay_env_steps`` env steps, linearly from ``lr``, and
    held after (RLlib's lr schedule, counted in sampled env steps); None: a constant ``lr``.
    Andrychowicz et al. 2021 found a linear decay helps continuous-control PPO a little."""
    lr_decay_env_steps: int | None = None
    """Env steps over which the learning rate goes from ``lr`` to ``lr_final`` (usually the
    run's budget); read only with ``lr_final``, so a search can fix it and try
    ``lr_final: null`` (the constant lr) against a decay."""
    train_batch_size: int = 4000
    """Env steps (one hour of all three agents) sampled per training iteration."""
    minibatch_size: int = 128
    """Env steps per SGD minibatch; at most train_batch_size."""
    num_epochs: int = 10
    """SGD passes over each training batch."""
    gamma: float = 0.99
    """Discount factor per hourly step."""
    lambda_: float = 0.95
    """GAE lambda: bias (0) versus variance (1) of the advantage estimate."""
    clip_param: float = 0.3
    """PPO's clipping range of the probability ratio."""
    entropy_coeff: float = 0.0
    """Weight of the entropy bonus in the loss (exploration)."""
    vf_clip_param: float = 10.0
    """Clipping range of the value-function loss (in reward units)."""
    vf_loss_coeff: float = 1.0
    """Weight of the value-function loss."""
    kl_coeff: float = 0.2
    """Initial weight of the KL penalty between old and new policy (RLlib adapts it)."""
    grad_clip: float | None = None
    """Global gradient-norm clip; None: no clipping."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the policy and value MLPs (``256x256`` on the command line)."""
    vf_share_layers: bool = True
    """A local critic's value head on the policy's MLP trunk (RLlib's default), or False: a
    separate value MLP of the same widths, so the value loss no longer shapes the policy's
    features (Andrychowicz et al. 2021 recommend separate networks for continuous-control
    PPO). A centralized critic is always a separate network (tune_grid.training.critic)."""
    num_env_runners: int = 0
    """Remote sampling workers; 0 samples in the driver/trial process."""
    num_envs_per_env_runner: int = 32
    """Vectorized envs per runner (at most one per whole day of the runner's batch share): batches
    the policy's forward pass and amortizes RLlib's per-step overhead (docs/throughput.md)."""
    rollout_fragment_length: int | None = None
    """Steps per env per sample call; None derives it from the batch size (at most 64 steps)."""
    num_gpus: float = 0.0
    """GPUs for the learner (0 = CPU)."""
    torch_threads: int = 1
    """Torch intra-op threads in learner and runners (more than 1 only on otherwise idle CPUs)."""
    training_loop: TrainingLoop = "lean"
    """'lean': tune-grid's sampling and learner loops around RLlib's modules and update rule,
    several times faster per env step (docs/throughput.md); 'rllib': RLlib's own loops. Both
    collect the same trajectories and make the same updates for the same seeds (tested)."""
    seed: int = 0
    """Seed of RLlib, torch and the env; with ``seeds: K`` a search trains seed, seed+1, ..."""
    eval_interval: int = 20_000
    """Env steps between validations of the greedy policy on the validation days (the search
    metric ``val_objective`` and the best checkpoint); also at the first and last iteration.
    0: validate only at the first and last iteration."""
    val_days: int | None = None
    """Validation days rolled at each validation: N evenly spaced of the split's 46, or None for
    all of them (one batched rollout, tens of milliseconds)."""


@dataclass(frozen=True)
class RunConfig(EnvConfig, TrainingFields):
    """One PPO training run: the fields of :class:`TrainingFields`, then every
    :class:`EnvConfig` field (inherited, so a new env key is a run key too), all flat."""

    @classmethod
    def _kind(cls) -> str:
        return "run config"

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["hidden_sizes"] = list(self.hidden_sizes)
        return values

    def lr_schedule(self) -> float | list[list[float]]:
        """RLlib's ``lr``: the constant ``lr``, or ``[[0, lr], [lr_decay_env_steps, lr_final]]``
        (piecewise linear in sampled env steps, the last value held)."""
        if self.lr_final is None or self.lr_decay_env_steps is None:
            return self.lr
        return [[0, self.lr], [self.lr_decay_env_steps, self.lr_final]]

    def env_config(self) -> EnvConfig:
        keys = EnvConfig.field_names()
        return EnvConfig.from_dict({k: getattr(self, k) for k in keys})

    def validate(self) -> None:
        _require(0.0 < self.lr <= 1.0, f"lr must be in (0, 1], got {self.lr}")
        _require(
            self.lr_final is None or self.lr_decay_env_steps is not None,
            f"lr_final ({self.lr_final}) needs lr_decay_env_steps, the env steps of the decay",
        )
        if self.lr_final is not None:
            _require(
                0.0 < self.lr_final <= 1.0,
                f"lr_final must be in (0, 1] or null, got {self.lr_final}",
            )
        if self.lr_decay_env_steps is not None:
            _require(
                self.lr_decay_env_steps >= 1,
                f"lr_decay_env_steps must be >= 1 or null, got {self.lr_decay_env_steps}",
            )
        _require(
            0.0 < self.reward_scale <= 1000.0,
            f"reward_scale must be in (0, 1000], got {self.reward_scale}",
        )
        _require(
            self.train_batch_size >= 24,
            f"train_batch_size must be >= 24 (one episode), got {self.train_batch_size}",
        )
        _require(
            self.minibatch_size >= 1, f"minibatch_size must be >= 1, got {self.minibatch_size}"
        )
        _require(
            self.minibatch_size <= self.train_batch_size,
            f"minibatch_size ({self.minibatch_size}) must be <= train_batch_size "
            f"({self.train_batch_size})",
        )
        _require(
            1 <= self.num_epochs <= 100, f"num_epochs must be in [1, 100], got {self.num_epochs}"
        )
        _require(0.0 < self.gamma <= 1.0, f"gamma must be in (0, 1], got {self.gamma}")
        if self.initial_log_std is not None:
            _require(
                -5.0 <= self.initial_log_std <= 2.0,
                f"initial_log_std must be in [-5, 2] or null, got {self.initial_log_std}",
            )
        _require(0.0 <= self.lambda_ <= 1.0, f"lambda_ must be in [0, 1], got {self.lambda_}")
        _require(
            0.0 < self.clip_param <= 1.0, f"clip_param must be in (0, 1], got {self.clip_param}"
        )
        _require(self.entropy_coeff >= 0.0, f"entropy_coeff must be >= 0, got {self.entropy_coeff}")
        _require(self.vf_clip_param > 0.0, f"vf_clip_param must be > 0, got {self.vf_clip_param}")
        _require(self.vf_loss_coeff >= 0.0, f"vf_loss_coeff must be >= 0, got {self.vf_loss_coeff}")
        _require(self.kl_coeff >= 0.0, f"kl_coeff must be >= 0, got {self.kl_coeff}")
        if self.grad_clip is not None:
            _require(self.grad_clip > 0.0, f"grad_clip must be > 0 or null, got {self.grad_clip}")
        _require(
            all(1 <= h <= 4096 for h in self.hidden_sizes),
            f"hidden_sizes must be in [1, 4096], got {list(self.hidden_sizes)}",
        )
        _require(
            0 <= self.num_env_runners <= 1024,
            f"num_env_runners must be in [0, 1024], got {self.num_env_runners}",
        )
        _require(
            1 <= self.num_envs_per_env_runner <= 256,
            f"num_envs_per_env_runner must be in [1, 256], got {self.num_envs_per_env_runner}",
        )
        if self.rollout_fragment_length is not None:
            _require(
                self.rollout_fragment_length >= 1,
                f"rollout_fragment_length must be >= 1 or null, got {self.rollout_fragment_length}",
            )
        _require(self.num_gpus >= 0.0, f"num_gpus must be >= 0, got {self.num_gpus}")
        _require(
            1 <= self.torch_threads <= 256, f"torch_threads must be >= 1, got {self.torch_threads}"
        )
        _require(self.seed >= 0, f"seed must be >= 0, got {self.seed}")
        _require(
            self.eval_interval >= 0,
            f"eval_interval must be >= 0 env steps, got {self.eval_interval}",
        )
        if self.val_days is not None:
            _require(self.val_days >= 1, f"val_days must be >= 1 or null, got {self.val_days}")
        self.env_config()  # validates the environment keys with the env's own rules


def field_docs(cls: type) -> dict[str, str]:
    """Each dataclass field's docstring (the string right after it), over ``cls`` and its bases."""
    docs: dict[str, str] = {}
    for klass in cls.__mro__:
        docs = {**_own_field_docs(klass), **docs}
    return docs


@functools.cache
def _own_field_docs(klass: type) -> dict[str, str]:
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
    except (OSError, TypeError, SyntaxError):
        return {}
    if not tree.body or not isinstance(tree.body[0], ast.ClassDef):
        return {}
    body = tree.body[0].body
    docs = {}
    for node, following in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs


ENV_KEYS = EnvConfig.field_names()
RUN_KEYS = RunConfig.field_names()
OUTCOME_FREE_KEYS = ("split", "share_reward", "price_lookahead")
"""EnvConfig keys that change neither the physics nor the objective's money and price of safety:
where days are drawn from, who is rewarded (``share_reward``) and what agents observe
(``price_lookahead``). Env configs equal outside them share the oracle's, the MPC's and the
baselines' per-day numbers; ``penalty`` and ``cost_scale`` set the price of safety the oracle and
the MPC optimize, so they are outcome keys."""


def outcome_values(config: EnvConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The outcome part of an env config: every key but :data:`OUTCOME_FREE_KEYS`, sorted."""
    values = config.to_dict() if isinstance(config, EnvConfig) else dict(config)
    return {k: v for k, v in sorted(values.items()) if k not in OUTCOME_FREE_KEYS}


def outcome_key(config: EnvConfig | Mapping[str, Any]) -> str:
    """Key of the outcome part of an env config (:func:`outcome_values` as JSON)."""
    return json.dumps(outcome_values(config), sort_keys=True)


def option_name(key: str) -> str:
    """``train_batch_size`` -> ``--train-batch-size``; ``lambda_`` -> ``--lambda``."""
    return "--" + key.rstrip("_").replace("_", "-")


def command_line_flags(values: Mapping[str, Any]) -> list[str]:
    """``tune-grid train`` options for the run-config ``values`` that differ from the defaults
    (``--share-reward``/``--no-share-reward`` for booleans, ``64x64`` for sizes)."""
    defaults = RunConfig().to_dict()
    flags = []
    for key in sorted(values):
        value = values[key]
        default = defaults.get(key)
        same_sizes = isinstance(value, list | tuple) and list(value) == list(default or ())
        if value == default or same_sizes:
            continue
        if isinstance(value, bool):
            flags.append(option_name(key) if value else "--no-" + option_name(key)[2:])
        elif isinstance(value, list | tuple):
            flags.append(f"{option_name(key)} {'x'.join(str(v) for v in value)}")
        else:
            flags.append(f"{option_name(key)} {value}")
    return flags
