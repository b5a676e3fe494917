"""The search-space YAML file: a pydantic model plus checks against ``RunConfig``.

:func:`load_space_file` validates everything before Ray starts. Every problem raises
:class:`SpaceFileError` whose message names the file, the key path and what is allowed, e.g.
``spaces/x.yaml: space.lr.low: must be < high (low=0.1, high=0.01)``.
"""

from __future__ import annotations

import itertools
import math
import re
import typing
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from tune_grid.config import (
    PYDANTIC_EXPECTED,
    RUN_KEYS,
    ConfigError,
    RunConfig,
    coerce_value,
)
from tune_grid.errors import TuneGridError
from tune_grid.results.schema import DEFAULT_METRIC, METRIC_NAMES, better_mode
from tune_grid.search.spec.distributions import (
    DISTRIBUTIONS,
    PARAM_KEYS,
    DistributionType,
    allowed_text,
    hint_accepts,
)
from tune_grid.search.spec.rules import RuleBroken
from tune_grid.search.spec.schedulers import SCHEDULERS, SchedulerType
from tune_grid.search.spec.searchers import SEARCHERS, SearcherType

TimeAttr = Literal["training_iteration", "env_steps", "time_total_s"]
_DEFAULT_STOP: dict[TimeAttr, float] = {"env_steps": 100_000}
STOP_KEYS: tuple[str, ...] = typing.get_args(TimeAttr)
DEFAULT_MODE = {m: better_mode(m) for m in METRIC_NAMES}
_RUN_HINTS = typing.get_type_hints(RunConfig)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_FLOAT_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
MAX_CHECK_COMBINATIONS = 256
REWARD_SCALE_KEYS = ("penalty", "cost_scale")
"""Weights of the reward and of the objective: a metric that applies them cannot rank them."""
PRICE_KEYS = ("export_discount", "congestion_price", "setpoint_penalty_price")
"""Tariffs and protocol prices that enter the cost: a metric that charges them cannot rank them
(the cheapest price would win by definition)."""
METRIC_CHARGES: dict[str, tuple[str, ...]] = {
    "episode_return_mean": (*REWARD_SCALE_KEYS, *PRICE_KEYS),
    "daily_cost_mean": PRICE_KEYS,
    "val_objective": (*REWARD_SCALE_KEYS, *PRICE_KEYS),
    "val_gap": (*REWARD_SCALE_KEYS, *PRICE_KEYS),
    "val_daily_cost": PRICE_KEYS,
}
"""Metric -> the run keys its own definition charges (the rest charge none of them)."""


class SpaceFileError(TuneGridError, ValueError):
    """A search-space file is malformed or invalid; the message names the file and key path."""

    def __init__(self, file: str | Path, key_path: str, message: str) -> None:
        self.file = str(file)
        self.key_path = key_path
        self.message = message
        where = f"{self.file}: {key_path}: " if key_path else f"{self.file}: "
        super().__init__(where + message)


class _Strict(BaseModel):
    """Base model: unknown keys are errors that list the allowed keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            allowed = list(cls.model_fields)
            for key in data:
                if key not in allowed:
                    raise PydanticCustomError(
                        "unknown_key",
                        "unknown key; allowed: {allowed}",
                        {"key": str(key), "allowed": ", ".join(allowed)},
                    )
        return data


class ParamSpec(_Strict):
    """One searched parameter: ``{type: loguniform|uniform|int, low, high}``, ``{type: choice,
    values: [...]}`` or ``{type: bool}``. ``int`` includes ``high``. The types and their rules are
    the entries of :data:`tune_grid.search.spec.distributions.DISTRIBUTIONS`."""

    type: str
    low: float | None = None
    high: float | None = None
    values: list[Any] | None = None

    @field_validator("type", mode="before")
    @classmethod
    def _known_type(cls, value: Any) -> Any:
        return _registered(value, DISTRIBUTIONS, "unknown distribution type")

    @model_validator(mode="after")
    def _check_shape(self) -> ParamSpec:
        kind = self.kind
        for key in PARAM_KEYS:
            if key not in kind.keys and getattr(self, key) is not None:
                raise _key_error(key, f"not allowed for type {self.type} ({kind.usage})")
        try:
            kind.check(self)
        except RuleBroken as exc:
            raise _key_error(exc.key, exc.message) from None
        return self

    @property
    def kind(self) -> DistributionType:
        """The registry entry of this parameter's type."""
        return DISTRIBUTIONS[self.type]

    def candidates(self) -> list[Any]:
        """Representative values: the bounds of a range, every value of a choice or bool."""
        return self.kind.candidates(self)

    def grid_values(self) -> list[Any]:
        """All values for grid search (``int`` expands low..high); raises for continuous types."""
        if self.kind.grid_values is None:
            raise ValueError(f"type {self.type} cannot be grid-searched (use choice)")
        return self.kind.grid_values(self)


class SearchSettings(_Strict):
    """``algorithm``: an entry of :data:`tune_grid.search.spec.searchers.SEARCHERS`; ``seed`` of its
    sampler; then the options that searcher takes (``n_startup_trials: 4`` for optuna ...),
    written beside them and kept in ``options``."""

    algorithm: str = "optuna"
    seed: int = Field(default=0, ge=0)
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_keys(cls, data: Any) -> Any:
        """The searcher's own options are checked here, with the searcher's names in errors."""
        if not isinstance(data, Mapping):
            return data
        algorithm = data.get("algorithm", "optuna")
        if not isinstance(algorithm, str) or algorithm not in SEARCHERS:
            raise _key_error("algorithm", f"got {algorithm!r}; allowed: {allowed_text(SEARCHERS)}")
        kind = SEARCHERS[algorithm]
        missing = kind.missing()
        if missing:
            raise _key_error("algorithm", f"{algorithm} {missing}")
        given = dict(data.get("options") or {})
        given.update({k: v for k, v in data.items() if k not in ("algorithm", "seed", "options")})
        options = {}
        for key, value in given.items():
            if key not in kind.options:
                allowed = ", ".join(["algorithm", "seed", *kind.options])
                raise _key_error(key, f"unknown key for searcher {algorithm}; allowed: {allowed}")
            try:
                options[key] = kind.options[key].check(key, value)
            except RuleBroken as exc:
                raise _key_error(exc.key, exc.message) from None
        out = {"algorithm": algorithm, "options": options}
        if "seed" in data:
            out["seed"] = data["seed"]
        return out

    @property
    def kind(self) -> SearcherType:
        """The registry entry of this search algorithm."""
        return SEARCHERS[self.algorithm]


class SchedulerSettings(_Strict):
    """``type``: an entry of :data:`tune_grid.search.spec.schedulers.SCHEDULERS`: ``asha`` with its
    rungs, ``fifo``, or a population scheduler (``pbt``, ``pb2``) with its perturbation keys and
    ``hyperparam_mutations`` (written like ``space`` entries). The rung keys are read by ``asha``
    only; the perturbation keys by the population schedulers only."""

    type: str = "asha"
    time_attr: TimeAttr = "env_steps"
    max_t: int = Field(default=100_000, ge=1)
    grace_period: int = Field(default=10_000, ge=1)
    reduction_factor: float = Field(default=2.0, gt=1.0)
    perturbation_interval: float | None = Field(default=None, gt=0)
    """Env steps between two perturbations of a trial (population schedulers)."""
    quantile_fraction: float = Field(default=0.25, gt=0, le=0.5)
    """Share of the population that clones the top share (population schedulers)."""
    resample_probability: float = Field(default=0.25, ge=0, le=1)
    """Chance that ``pbt`` draws a mutated value anew from its range instead of scaling it."""
    hyperparam_mutations: dict[str, ParamSpec] = Field(default_factory=dict)
    """The keys a population scheduler changes mid-run, each with its range."""

    @field_validator("type", mode="before")
    @classmethod
    def _known_type(cls, value: Any) -> Any:
        return _registered(value, SCHEDULERS, "unknown scheduler")

    @model_validator(mode="after")
    def _check_rules(self) -> SchedulerSettings:
        if not self.kind.population:
            for key in POPULATION_KEYS:
                if key in self.model_fields_set:
                    raise _key_error(key, f"read by {allowed_text(_population_names())} only")
        try:
            self.kind.check(self)
        except RuleBroken as exc:
            raise _key_error(exc.key, exc.message) from None
        return self

    @property
    def kind(self) -> SchedulerType:
        """The registry entry of this scheduler type."""
        return SCHEDULERS[self.type]


POPULATION_KEYS = (
    "perturbation_interval",
    "quantile_fraction",
    "resample_probability",
    "hyperparam_mutations",
)
"""The scheduler keys read by population schedulers only."""


def _population_names() -> list[str]:
    return [name for name, kind in SCHEDULERS.items() if kind.population]


class Resources(_Strict):
    """CPUs, GPUs and memory reserved for one trial (all its seeds)."""

    cpu: float = Field(default=1.0, gt=0)
    gpu: float = Field(default=0.0, ge=0)
    memory: Literal["auto"] | float = "auto"
    """GiB for the whole trial, or ``auto``: what tune_grid.search.run.resources's measured model
    gives for the trial's seeds, envs, batch and network (docs/cluster.md)."""

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> Any:
        if value == "auto":
            return value
        number = float(value) if isinstance(value, str) and _FLOAT_RE.match(value) else value
        if isinstance(number, bool) or not isinstance(number, int | float) or not number > 0:
            raise ValueError("must be auto or a number of GiB > 0")
        return float(number)


class EvaluationSettings(_Strict):
    """Held-out test-day evaluation after the search."""

    enabled: bool = True
    top_k: int | None = Field(default=None, ge=1)
    days: int = Field(default=7, ge=1, le=366)
    baselines: bool = True
    oracle: bool = True
    mpc: Literal["perfect", "persistence", "climatology"] | None = "persistence"
    """The receding-horizon MPC's forecaster for the baseline row and each trial's
    ``test_mpc_gap`` (:mod:`tune_grid.oracle.mpc`); null skips it. The default env config's
    common test days come from a shipped table; other days take ~16 s each, in parallel on Ray."""


class ConfirmSettings(_Strict):
    """Fresh-seed confirmation after the search, raced (:mod:`tune_grid.search.answer.racing`).

    The ``top_k`` configurations by the search objective, plus the best one with each named
    factor changed, are retrained at the search's full ``stop`` on seeds the search never used,
    ``seeds_per_round`` at a time; each run's best-validation checkpoint is scored on ``days``
    test days. After each round a configuration separated as worse than the current best (paired
    by seed and day, at ``confidence``) is dropped. The race stops when one remains, when all
    remaining are within ``tolerance`` $/day of the best, or when ``seeds`` are spent."""

    top_k: int = Field(default=2, ge=1)
    seeds: int = Field(default=4, ge=2)
    """Fresh seeds per configuration at most (the race's budget); >= 2 to measure seed noise."""
    seeds_per_round: int = Field(default=2, ge=1)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    tolerance: float = Field(default=5.0, ge=0.0)
    """$/day: configurations whose difference to the best lies inside +-tolerance are
    equivalent, and the race stops."""
    factors: list[str] = Field(default_factory=list)
    """Searched discrete keys (policy_sharing, share_reward, ...) to race at the optimum: the
    best configuration with each other value of the factor."""
    days: int = Field(default=61, ge=2, le=366)
    """Test days each confirmed run is scored on (evenly spaced over the test year)."""

    @property
    def rounds(self) -> int:
        """Rounds the seed budget allows."""
        return -(-self.seeds // self.seeds_per_round)


class ValidationSettings(_Strict):
    """Periodic validation of the trials' greedy policies (``eval_interval`` and ``val_days``
    are run-config keys, set under ``fixed``)."""

    oracle: bool = True
    """Solve the oracle on the validation days before the trials start (``val_gap``; cached on
    disk, so only a first search pays the few seconds per day)."""


class ExportSettings(_Strict):
    """How the driver mirrors the search into Parquet (:class:`ParquetExportCallback`)."""

    flush_interval_s: float | Literal["auto"] = 2.0
    """How often Tune saves its experiment state and new rows are written (as part files), in
    seconds; ``auto``: Tune's adaptive period (at least 10 s, and 19 x the last save's duration,
    so periodic saving takes at most 5 % of the driver's time however many trials the search
    holds). Tune also saves whenever a trial wrote ``checkpoint_num_to_keep`` checkpoints since
    the last save."""
    merge_time_share: float = Field(default=0.02, gt=0, le=1)
    """Largest share of the driver's time spent merging parts into the two Parquet files."""

    @field_validator("flush_interval_s", mode="before")
    @classmethod
    def _seconds_or_auto(cls, value: Any) -> Any:
        if value == "auto":
            return value
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise PydanticCustomError(
                "flush_interval",
                "must be a number of seconds >= 0 or 'auto'",
            )
        return value

    @property
    def tune_state_period(self) -> str:
        """``TUNE_GLOBAL_CHECKPOINT_S``: seconds between Tune's state saves, or ``auto``."""
        return "auto" if self.flush_interval_s == "auto" else f"{self.flush_interval_s:g}"

    @property
    def callback_flush_interval_s(self) -> float:
        """The export's own minimum interval between flushes (``auto``: at every Tune save,
        which Tune spaces at least 10 s apart)."""
        return 0.0 if self.flush_interval_s == "auto" else float(self.flush_interval_s)


class WandbSettings(_Strict):
    """W&B project for ``--wandb`` (group = experiment name)."""

    project: str = "tune-grid"
    entity: str | None = None


class SpaceFile(_Strict):
    """The whole YAML file (see ``docs/search.md``)."""

    experiment: str
    fixed: dict[str, Any] = Field(default_factory=dict)
    space: dict[str, ParamSpec]
    search: SearchSettings = Field(default_factory=SearchSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    num_samples: int = Field(default=10, ge=1)
    max_concurrent_trials: int | None = Field(default=None, ge=1)
    resources_per_trial: Resources = Field(default_factory=Resources)
    seeds: int = Field(default=1, ge=1, le=64)
    metric: str = DEFAULT_METRIC
    """One of :data:`~tune_grid.results.schema.METRIC_NAMES`."""
    mode: Literal["max", "min"] | None = None
    stop: dict[TimeAttr, float] = Field(default_factory=lambda: dict(_DEFAULT_STOP))
    storage: str = "results"
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    confirm: ConfirmSettings | None = None
    """Fresh-seed confirmation of the finalists (None: the search ends with its evaluation)."""
    max_failures: int = Field(default=2, ge=0)
    checkpoint_num_to_keep: int = Field(default=2, ge=1)
    export: ExportSettings = Field(default_factory=ExportSettings)
    wandb: WandbSettings = Field(default_factory=WandbSettings)

    @field_validator("metric", mode="before")
    @classmethod
    def _known_metric(cls, value: Any) -> Any:
        return _registered(value, METRIC_NAMES, "unknown metric")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and isinstance(data.get("scheduler"), str):
            data = {**data, "scheduler": {"type": data["scheduler"]}}
        return data

    @model_validator(mode="after")
    def _check_top_level(self) -> SpaceFile:
        if not _NAME_RE.match(self.experiment):
            raise _key_error(
                "experiment", f"must be letters, digits, '_', '.', '-', got {self.experiment!r}"
            )
        if not self.space and not self.scheduler.hyperparam_mutations:
            raise _key_error("space", "must name at least one parameter to search")
        if not self.stop:
            raise _key_error("stop", f"needs at least one of {', '.join(STOP_KEYS)}")
        for key, value in self.stop.items():
            if value <= 0:
                raise _key_error(f"stop.{key}", f"must be > 0, got {_num(value)}")
        return self

    @property
    def initial_space(self) -> dict[str, ParamSpec]:
        """The parameters each trial starts from: ``space``, plus each mutated key that ``space``
        lacks (drawn from its mutation range)."""
        mutations = self.scheduler.hyperparam_mutations
        return {**self.space, **{k: v for k, v in mutations.items() if k not in self.space}}

    @property
    def resolved_mode(self) -> str:
        """``mode``, or the natural direction of ``metric``."""
        return self.mode or DEFAULT_MODE[self.metric]

    def with_name(self, name: str | None) -> SpaceFile:
        """A copy with another experiment name (``--name``)."""
        return self if not name else self.model_copy(update={"experiment": name})

    def fixed_config(self) -> dict[str, Any]:
        """The ``fixed`` mapping with values normalised by RunConfig's types (tuples as lists)."""
        out = {}
        for key, value in self.fixed.items():
            value = coerce_value(key, value, _RUN_HINTS[key])
            out[key] = list(value) if isinstance(value, tuple) else value
        return out


def _num(value: float) -> str:
    return f"{value:g}"


def _registered(value: Any, registry: Collection[str], message: str) -> Any:
    """``value`` if it names an entry of ``registry``; else the error a Literal field gives."""
    if not isinstance(value, str) or value not in registry:
        raise PydanticCustomError("literal_error", message, {"expected": allowed_text(registry)})
    return value


def _key_error(key: str, message: str) -> PydanticCustomError:
    return PydanticCustomError("key_error", "{message}", {"key": key, "message": message})


_BOUNDS = {
    "greater_than": (">", "gt"),
    "greater_than_equal": (">=", "ge"),
    "less_than": ("<", "lt"),
    "less_than_equal": ("<=", "le"),
}


def _format_loc(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + str(part)
    return path


def _pydantic_message(file: str | Path, exc: ValidationError) -> SpaceFileError:
    err = exc.errors(include_url=False)[0]
    # Drop pydantic's internal tags (e.g. function-after[...]) from the location.
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p and "]" in p))
    ctx = err.get("ctx") or {}
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] in ("unknown_key", "key_error"):
        loc = (*loc, *ctx["key"].split("."))
    if err["type"] == "extra_forbidden":
        message = "unknown key"
    elif err["type"] == "literal_error":
        message = f"got {err.get('input')!r}; allowed: {ctx.get('expected', '')}"
    elif err["type"] == "missing":
        message = "required key is missing"
    elif err["type"] in _BOUNDS:
        op, key = _BOUNDS[err["type"]]
        message = f"must be {op} {ctx.get(key)} (got {err.get('input')!r})"
    elif err["type"] in PYDANTIC_EXPECTED:
        message = f"expected {PYDANTIC_EXPECTED[err['type']]}, got {err.get('input')!r}"
    elif err["type"] in ("model_type", "dict_type", "model_attributes_type"):
        message = f"expected a mapping of keys, got {err.get('input')!r}"
    elif err["type"] not in ("unknown_key", "key_error"):
        message = f"{message} (got {err.get('input')!r})"
    return SpaceFileError(file, _format_loc(loc), message)


def parse_space(data: Any, file: str | Path = "<space>") -> SpaceFile:
    """Validate an already-parsed YAML document; raise :class:`SpaceFileError` on any problem."""
    if not isinstance(data, Mapping):
        raise SpaceFileError(file, "", f"expected a mapping of keys, got {type(data).__name__}")
    for key in data:
        if not isinstance(key, str):
            raise SpaceFileError(file, str(key), "keys must be strings")
    try:
        spec = SpaceFile.model_validate(_read_numbers(dict(data)))
    except ValidationError as exc:
        raise _pydantic_message(file, exc) from None
    check_against_run_config(spec, file)
    return spec


def _read_numbers(data: dict[str, Any]) -> dict[str, Any]:
    """Turn YAML-1.1 strings like ``1e-4`` into floats where RunConfig expects a float."""
    fixed = data.get("fixed")
    if isinstance(fixed, Mapping):
        data["fixed"] = {
            k: _yaml_number(v, _RUN_HINTS[k]) if k in _RUN_HINTS else v for k, v in fixed.items()
        }
    space = data.get("space")
    if isinstance(space, Mapping):
        new_space = {}
        for name, param in space.items():
            if isinstance(param, Mapping) and name in _RUN_HINTS:
                values = param.get("values")
                if isinstance(values, list):
                    values = [_yaml_number(v, _RUN_HINTS[name]) for v in values]
                    param = {**param, "values": values}
            new_space[name] = param
        data["space"] = new_space
    return data


def load_space_file(path: str | Path) -> SpaceFile:
    """Read and validate a search-space YAML file (no Ray import)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpaceFileError(path, "", f"cannot read file ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpaceFileError(path, "", f"malformed YAML: {where}{problem}") from None
    return parse_space(data, path)


# --- checks against RunConfig -------------------------------------------------------------------


def _yaml_number(value: Any, hint: Any) -> Any:
    """YAML 1.1 reads ``1e-4`` as a string; read it as the number a float field expects."""
    if isinstance(value, str) and hint_accepts(hint, (float,)) and _FLOAT_RE.match(value.strip()):
        return float(value)
    return value


def _check_types(name: str, param: ParamSpec, file: str | Path, where: str = "space") -> None:
    try:
        param.kind.check_field_type(param, name, _RUN_HINTS[name])
    except RuleBroken as exc:
        raise SpaceFileError(file, f"{where}.{name}.{exc.key}", exc.message) from None


def _other_combinations(spec: SpaceFile, skip: str) -> Iterator[dict[str, Any]]:
    names = [n for n in spec.space if n != skip]
    pools = [spec.space[n].candidates() for n in names]
    for i, combo in enumerate(itertools.product(*pools)):
        if i >= MAX_CHECK_COMBINATIONS:
            return
        yield dict(zip(names, combo, strict=True))


def _check_value(spec: SpaceFile, name: str, value: Any, path: str, file: str | Path) -> None:
    """``value`` must give a valid RunConfig together with the fixed keys and some choice of the
    other searched parameters' candidate values."""
    first_error: str | None = None
    for others in _other_combinations(spec, name):
        try:
            RunConfig.from_dict({**spec.fixed, **others, name: value})
            return
        except ConfigError as exc:
            first_error = first_error or str(exc)
    raise SpaceFileError(file, path, first_error or "invalid value")


def check_against_run_config(spec: SpaceFile, file: str | Path = "<space>") -> None:
    """Fixed keys and searched parameters must be RunConfig keys with values of its types."""
    for key, value in spec.fixed.items():
        if key not in RUN_KEYS:
            raise SpaceFileError(
                file, f"fixed.{key}", f"unknown run config key; allowed: {', '.join(RUN_KEYS)}"
            )
        try:
            coerce_value(key, value, _RUN_HINTS[key])
        except ConfigError as exc:
            raise SpaceFileError(file, f"fixed.{key}", str(exc)) from None
    for name, param in spec.space.items():
        if name not in RUN_KEYS:
            allowed = ", ".join(RUN_KEYS)
            raise SpaceFileError(
                file, f"space.{name}", f"unknown run config parameter; allowed: {allowed}"
            )
        if name in spec.fixed:
            raise SpaceFileError(file, f"space.{name}", "is also set in fixed; remove one of them")
        if name == "seed":
            raise SpaceFileError(file, "space.seed", "seeds are set by the top-level key seeds")
        if name in METRIC_CHARGES.get(spec.metric, ()):
            fair = ", ".join(m for m in METRIC_NAMES if name not in METRIC_CHARGES.get(m, ()))
            raise SpaceFileError(
                file,
                f"space.{name}",
                f"metric {spec.metric} charges {name} itself, so the search would pick the "
                f"value that makes it cheapest by definition; rank by a metric it does not "
                f"enter ({fair}) or fix it",
            )
        _check_types(name, param, file)
    try:
        RunConfig.from_dict(spec.fixed)
    except ConfigError as exc:
        message = str(exc)
        key = message.split(":")[0].split(" ")[0]
        if key in spec.fixed:
            raise SpaceFileError(file, f"fixed.{key}", message) from None
        # The fixed keys alone may be invalid only with defaults a searched key replaces.
        if not any(k in message for k in spec.space):
            raise SpaceFileError(file, "fixed", message) from None
    for name, param in spec.space.items():
        for key, value in param.kind.run_values(param):
            _check_value(spec, name, value, f"space.{name}.{key}", file)
    check_algorithm(spec, file)
    check_budgets(spec, file)


def check_algorithm(spec: SpaceFile, file: str | Path = "<space>") -> None:
    """The algorithm (``fixed.algorithm``) must be registered and read every key the file sets,
    and a population scheduler may mutate only the keys it can change mid-run."""
    from tune_grid.training.algorithms import algorithm_for

    if "algorithm" in spec.space:
        raise SpaceFileError(
            file, "space.algorithm", "fix the algorithm (fixed.algorithm): each reads other keys"
        )
    try:
        entry = algorithm_for(str(spec.fixed.get("algorithm", RunConfig.algorithm)))
    except ConfigError as exc:
        raise SpaceFileError(file, "fixed.algorithm", str(exc).split(": ", 1)[1]) from None
    for where, keys in (("fixed", spec.fixed), ("space", spec.space)):
        for key in keys:
            if not entry.reads(key):
                raise SpaceFileError(
                    file,
                    f"{where}.{key}",
                    f"not read by algorithm {entry.name!r}; it reads {', '.join(entry.keys)} "
                    "besides the shared keys",
                )
    for key in spec.scheduler.hyperparam_mutations:
        reason = entry.why_not_mutable(key)
        if reason is not None:
            raise SpaceFileError(
                file,
                f"scheduler.hyperparam_mutations.{key}",
                f"cannot change mid-run: it {reason}; mutable: {', '.join(entry.mutable)}",
            )
    scheduled = spec.fixed.get("lr_final") is not None or "lr_final" in spec.space
    if scheduled and "lr" in spec.scheduler.hyperparam_mutations:
        raise SpaceFileError(
            file,
            "scheduler.hyperparam_mutations.lr",
            "cannot change mid-run under an lr schedule (lr_final): a population scheduler "
            "sets a constant lr; drop lr_final or mutate other keys",
        )
    if spec.confirm is not None:
        _check_confirm(spec, spec.confirm, file)
    if spec.scheduler.kind.population:
        _check_population(spec, file)
    if spec.search.kind.grid:
        discrete = ", ".join(n for n, kind in DISTRIBUTIONS.items() if kind.grid_values)
        for name, param in spec.space.items():
            if param.kind.grid_values is None:
                raise SpaceFileError(
                    file,
                    f"space.{name}.type",
                    f"{spec.search.algorithm} search needs discrete parameters ({discrete}), "
                    f"got {param.type}",
                )


def discrete_params(spec: SpaceFile) -> list[str]:
    """The searched keys with a finite set of values (those a confirmation can race)."""
    return [name for name, param in spec.space.items() if param.kind.grid_values is not None]


def _check_confirm(spec: SpaceFile, confirm: ConfirmSettings, file: str | Path) -> None:
    """The ``confirm:`` block against the rest of the file."""
    if confirm.seeds < confirm.seeds_per_round:
        raise SpaceFileError(
            file,
            "confirm.seeds",
            f"must be >= seeds_per_round ({confirm.seeds_per_round}): the first round trains "
            f"that many fresh seeds per configuration, got {confirm.seeds}",
        )
    allowed = discrete_params(spec)
    for index, factor in enumerate(confirm.factors):
        if factor not in allowed:
            raise SpaceFileError(
                file,
                f"confirm.factors[{index}]",
                f"{factor!r} is not a searched discrete parameter; allowed: "
                f"{', '.join(allowed) or 'none (search a choice or bool key)'}",
            )
    if not ({"env_steps", "training_iteration"} & set(spec.stop)):
        raise SpaceFileError(
            file,
            "confirm",
            "retrains at the search's full budget, so stop needs env_steps or "
            "training_iteration (a time budget differs between machines)",
        )
    if spec.scheduler.kind.population:
        raise SpaceFileError(
            file,
            "confirm",
            f"retrains fixed configurations, but scheduler {spec.scheduler.type} changes a "
            "trial's values mid-run; drop confirm or use asha/fifo",
        )


BATCH_KEYS = ("train_batch_size",)
"""Searched keys that change how many env steps an iteration takes."""


def check_budgets(spec: SpaceFile, file: str | Path = "<space>") -> None:
    """Budgets counted in iterations are unequal when a searched key sets the env steps of an
    iteration: then rungs and stops must count env steps."""
    searched = [k for k in BATCH_KEYS if k in spec.space]
    if not searched:
        return
    why = (
        f"{searched[0]} is searched, so one iteration is a different number of env steps in "
        "each trial and trials would be compared after unequal experience"
    )
    if spec.scheduler.kind.stops.stops_trials and spec.scheduler.time_attr == "training_iteration":
        raise SpaceFileError(
            file,
            "scheduler.time_attr",
            f"training_iteration: {why}; write time_attr: env_steps with max_t and "
            "grace_period in env steps",
        )
    if "training_iteration" in spec.stop:
        raise SpaceFileError(
            file,
            "stop.training_iteration",
            f"{why}; write stop: {{env_steps: N}}",
        )


def smallest_batch(spec: SpaceFile) -> int:
    """The smallest ``train_batch_size`` a trial of the search can have (env steps/iteration)."""
    if "train_batch_size" in spec.fixed:
        return int(spec.fixed["train_batch_size"])
    if "train_batch_size" in spec.space:
        return int(min(spec.space["train_batch_size"].candidates()))
    return int(RunConfig.train_batch_size)


def checkpoints_needed(spec: SpaceFile) -> int:
    """Checkpoints a trial must keep under a population scheduler.

    A trial clones the checkpoint a top trial saved at that trial's last perturbation, up to one
    perturbation interval (``interval / smallest batch`` iterations, each saving a checkpoint)
    earlier; Tune keeps the newest ``checkpoint_num_to_keep``, so one more plus a margin of one.
    """
    return checkpoints_for(spec.scheduler.perturbation_interval or 0.0, smallest_batch(spec))


def checkpoints_for(perturbation_interval: float, smallest_batch: int) -> int:
    """:func:`checkpoints_needed` from its two inputs."""
    return math.ceil(perturbation_interval / smallest_batch) + 2


def _check_population(spec: SpaceFile, file: str | Path) -> None:
    """Rules of a population scheduler across the file: searcher, population, mutated keys
    against ``fixed`` and RunConfig, and checkpoint retention."""
    name = spec.scheduler.type
    if not spec.search.kind.population_ok:
        allowed = ", ".join(n for n, k in SEARCHERS.items() if k.population_ok)
        raise SpaceFileError(
            file,
            "search.algorithm",
            f"scheduler {name} chooses its population itself (Ray Tune's population schedulers "
            f"take no model-based searcher): use {allowed}, got {spec.search.algorithm}",
        )
    if not spec.search.kind.grid and spec.num_samples < 2:
        raise SpaceFileError(
            file, "num_samples", f"scheduler {name} needs a population of >= 2 trials"
        )
    for key, param in spec.scheduler.hyperparam_mutations.items():
        where = f"scheduler.hyperparam_mutations.{key}"
        if key in spec.fixed:
            raise SpaceFileError(
                file, where, "is also set in fixed; a mutated key starts from space or its range"
            )
        _check_types(key, param, file, "scheduler.hyperparam_mutations")
        for arg, value in param.kind.run_values(param):
            _check_value(spec, key, value, f"{where}.{arg}", file)
    needed = checkpoints_needed(spec)
    if spec.checkpoint_num_to_keep < needed:
        interval = spec.scheduler.perturbation_interval or 0.0
        raise SpaceFileError(
            file,
            "checkpoint_num_to_keep",
            f"must be >= {needed} with scheduler {name} (perturbation_interval {_num(interval)} / "
            f"train_batch_size {smallest_batch(spec)}, + 2): a trial clones checkpoints up to "
            f"one interval old, got {spec.checkpoint_num_to_keep}",
        )
