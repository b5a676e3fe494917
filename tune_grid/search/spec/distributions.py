"""The distribution types of a searched parameter (``space.<name>.type``), one table entry each.

An entry holds every piece of a type: the keys it takes and their checks, how it is checked
against ``RunConfig``'s field types, the values that stand for it when the file is validated, its
grid values, its Ray Tune domain, its Optuna distribution and its W&B sweep parameter. A new type
is one :func:`register` call; :class:`DistributionType` has no defaults and :func:`register`
refuses an entry with a piece missing, so nothing falls back silently to another type's behaviour.

Importing this module imports neither Ray nor Optuna; the pieces that build their objects import
them when called.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from tune_grid.search.spec.rules import RuleBroken

PARAM_KEYS = ("low", "high", "values")
"""The argument keys a parameter may carry besides ``type``; each type takes a subset."""


class Param(Protocol):
    """What the pieces read from a searched parameter (``space_file.ParamSpec``)."""

    @property
    def type(self) -> str: ...
    @property
    def low(self) -> float | None: ...
    @property
    def high(self) -> float | None: ...
    @property
    def values(self) -> list[Any] | None: ...


@dataclass(frozen=True)
class DistributionType:
    """Everything one ``type:`` of a searched parameter needs (every field is required)."""

    name: str
    keys: tuple[str, ...]
    """The argument keys it takes, from ``PARAM_KEYS``; the others must be absent."""
    check: Callable[[Param], None]
    """Rules on the arguments beyond presence (bounds, integers, duplicates); raises
    :class:`RuleBroken`."""
    check_field_type: Callable[[Param, str, Any], None]
    """``(param, field name, RunConfig type hint)``: raises :class:`RuleBroken` when the type
    cannot produce values of that field's type."""
    run_values: Callable[[Param], list[tuple[str, Any]]]
    """``(key, value)`` pairs checked against RunConfig's rules (e.g. the bounds of a range)."""
    candidates: Callable[[Param], list[Any]]
    """Representative values: the bounds of a range, every value of a choice."""
    grid_values: Callable[[Param], list[Any]] | None
    """Every value of a grid search; None for a type that cannot be grid-searched (continuous)."""
    tune_domain: Callable[[Param], Any]
    """The Ray Tune sampling domain."""
    optuna_distribution: Callable[[Param], Any]
    """The Optuna distribution."""
    wandb_parameter: Callable[[Param], dict[str, Any]]
    """The W&B sweep parameter (``{"distribution": ..., "min": ..., "max": ...}`` or values)."""

    @property
    def usage(self) -> str:
        """How the type is written, for errors: ``use low, high`` or ``it takes no arguments``."""
        return f"use {', '.join(self.keys)}" if self.keys else "it takes no arguments"


DISTRIBUTIONS: dict[str, DistributionType] = {}
"""Registered types by name, in registration order."""
_PIECES = tuple(f.name for f in dataclasses.fields(DistributionType) if f.name not in ("name",))
_OPTIONAL_PIECES = ("grid_values",)


def register(kind: DistributionType) -> DistributionType:
    """Add ``kind`` to :data:`DISTRIBUTIONS`; ValueError for a missing piece or a taken name."""
    if not kind.name or not kind.name.isidentifier():
        raise ValueError(f"distribution type name must be an identifier, got {kind.name!r}")
    if kind.name in DISTRIBUTIONS:
        raise ValueError(f"distribution type {kind.name!r} is already registered")
    unknown = [k for k in kind.keys if k not in PARAM_KEYS]
    if unknown:
        raise ValueError(
            f"distribution type {kind.name!r}: keys {unknown} unknown; allowed: {PARAM_KEYS}"
        )
    for piece in _PIECES:
        value = getattr(kind, piece)
        if piece == "keys" or (value is None and piece in _OPTIONAL_PIECES):
            continue
        if not callable(value):
            raise ValueError(
                f"distribution type {kind.name!r}: {piece} must be a function, got {value!r}"
            )
    DISTRIBUTIONS[kind.name] = kind
    return kind


def allowed_text(names: typing.Iterable[str]) -> str:
    """``'a', 'b' or 'c'``: the allowed names, worded as pydantic words a Literal."""
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def encode_value(value: Any) -> Any:
    """A search-safe scalar: lists of ints become ``"64x64"``; other values are unchanged."""
    if isinstance(value, list | tuple):
        return "x".join(str(int(v)) for v in value)
    return value


# --- shared pieces ------------------------------------------------------------------------------


def _num(value: float) -> str:
    return f"{value:g}"


def _bounds(param: Param) -> tuple[float, float]:
    assert param.low is not None and param.high is not None  # checked by _check_range
    return param.low, param.high


def _int_bounds(param: Param) -> tuple[int, int]:
    low, high = _bounds(param)
    return int(low), int(high)


def _require_bounds(param: Param) -> None:
    for key in ("low", "high"):
        if getattr(param, key) is None:
            raise RuleBroken(key, f"required for type {param.type}")


def _check_range(param: Param) -> None:
    _require_bounds(param)
    low, high = _bounds(param)
    if low >= high:
        raise RuleBroken("low", f"must be < high (low={_num(low)}, high={_num(high)})")


def _hint_options(hint: Any) -> tuple[Any, ...]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def hint_accepts(hint: Any, kinds: tuple[type, ...]) -> bool:
    """True when the type hint (or one option of a union) is one of ``kinds``."""
    return any(option in kinds for option in _hint_options(hint))


def type_text(hint: Any) -> str:
    """A type hint in words: ``float``, ``one of 'shared', 'independent'``."""
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(hint))
    return getattr(hint, "__name__", str(hint)).replace("NoneType", "None")


def _samples(what: str, kinds: tuple[type, ...]) -> Callable[[Param, str, Any], None]:
    """A ``check_field_type`` piece: the field's type must be one of ``kinds``."""

    def check(param: Param, name: str, hint: Any) -> None:
        if not hint_accepts(hint, kinds):
            raise RuleBroken("type", f"{param.type} samples {what} but {name} is {type_text(hint)}")

    return check


def _range_run_values(param: Param) -> list[tuple[str, Any]]:
    return [("low", param.low), ("high", param.high)]


def _range_candidates(param: Param) -> list[Any]:
    return list(_bounds(param))


def _tune_choice(param: Param) -> Any:
    from ray import tune

    return tune.choice([encode_value(v) for v in DISTRIBUTIONS[param.type].candidates(param)])


def _optuna_categorical(param: Param) -> Any:
    from optuna.distributions import CategoricalDistribution

    return CategoricalDistribution(
        [encode_value(v) for v in DISTRIBUTIONS[param.type].candidates(param)]
    )


def _wandb_values(param: Param) -> dict[str, Any]:
    return {"values": DISTRIBUTIONS[param.type].candidates(param)}


# --- loguniform, uniform ------------------------------------------------------------------------


def _check_loguniform(param: Param) -> None:
    _check_range(param)
    low, _ = _bounds(param)
    if low <= 0:
        raise RuleBroken("low", f"must be > 0 for loguniform, got {_num(low)}")


def _float_distribution(log: bool) -> Callable[[Param], Any]:
    def build(param: Param) -> Any:
        from optuna.distributions import FloatDistribution

        low, high = _bounds(param)
        return FloatDistribution(low, high, log=log)

    return build


def _tune_loguniform(param: Param) -> Any:
    from ray import tune

    return tune.loguniform(*_bounds(param))


def _tune_uniform(param: Param) -> Any:
    from ray import tune

    return tune.uniform(*_bounds(param))


def _wandb_range(distribution: str) -> Callable[[Param], dict[str, Any]]:
    def build(param: Param) -> dict[str, Any]:
        return {"distribution": distribution, "min": param.low, "max": param.high}

    return build


register(
    DistributionType(
        name="loguniform",
        keys=("low", "high"),
        check=_check_loguniform,
        check_field_type=_samples("floats", (float,)),
        run_values=_range_run_values,
        candidates=_range_candidates,
        grid_values=None,
        tune_domain=_tune_loguniform,
        optuna_distribution=_float_distribution(log=True),
        wandb_parameter=_wandb_range("log_uniform_values"),
    )
)
register(
    DistributionType(
        name="uniform",
        keys=("low", "high"),
        check=_check_range,
        check_field_type=_samples("floats", (float,)),
        run_values=_range_run_values,
        candidates=_range_candidates,
        grid_values=None,
        tune_domain=_tune_uniform,
        optuna_distribution=_float_distribution(log=False),
        wandb_parameter=_wandb_range("uniform"),
    )
)


# --- int (inclusive of high) --------------------------------------------------------------------


def _check_int(param: Param) -> None:
    _require_bounds(param)
    for key in ("low", "high"):
        value = getattr(param, key)
        if not float(value).is_integer():
            raise RuleBroken(key, f"must be an integer for type int, got {_num(value)}")
    _check_range(param)


def _int_grid(param: Param) -> list[Any]:
    low, high = _int_bounds(param)
    return list(range(low, high + 1))


def _tune_randint(param: Param) -> Any:
    from ray import tune

    low, high = _int_bounds(param)
    return tune.randint(low, high + 1)  # Tune's upper bound is exclusive


def _optuna_int(param: Param) -> Any:
    from optuna.distributions import IntDistribution

    return IntDistribution(*_int_bounds(param))


def _wandb_int(param: Param) -> dict[str, Any]:
    low, high = _int_bounds(param)
    return {"distribution": "int_uniform", "min": low, "max": high}


register(
    DistributionType(
        name="int",
        keys=("low", "high"),
        check=_check_int,
        check_field_type=_samples("integers", (int, float)),
        run_values=_range_run_values,
        candidates=lambda param: list(_int_bounds(param)),
        grid_values=_int_grid,
        tune_domain=_tune_randint,
        optuna_distribution=_optuna_int,
        wandb_parameter=_wandb_int,
    )
)


# --- choice, bool -------------------------------------------------------------------------------


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _check_choice(param: Param) -> None:
    if not param.values:
        raise RuleBroken("values", "must be a non-empty list for type choice")
    for i, value in enumerate(param.values):
        if isinstance(value, dict):
            raise RuleBroken(f"values[{i}]", f"must be a scalar or list, got {value!r}")
    if len({_hashable(v) for v in param.values}) != len(param.values):
        raise RuleBroken("values", f"contains duplicates: {param.values}")


def _check_choice_field_type(param: Param, name: str, hint: Any) -> None:
    from tune_grid.config import ConfigError, coerce_value

    for i, value in enumerate(param.values or []):
        try:
            coerce_value(name, value, hint)
        except ConfigError as exc:
            raise RuleBroken(f"values[{i}]", str(exc)) from None


def _choice_values(param: Param) -> list[Any]:
    return list(param.values or [])


register(
    DistributionType(
        name="choice",
        keys=("values",),
        check=_check_choice,
        check_field_type=_check_choice_field_type,
        run_values=lambda param: [(f"values[{i}]", v) for i, v in enumerate(param.values or [])],
        candidates=_choice_values,
        grid_values=_choice_values,
        tune_domain=_tune_choice,
        optuna_distribution=_optuna_categorical,
        wandb_parameter=_wandb_values,
    )
)
register(
    DistributionType(
        name="bool",
        keys=(),
        check=lambda param: None,
        check_field_type=_samples("true/false", (bool,)),
        run_values=lambda param: [],
        candidates=lambda param: [False, True],
        grid_values=lambda param: [False, True],
        tune_domain=_tune_choice,
        optuna_distribution=_optuna_categorical,
        wandb_parameter=_wandb_values,
    )
)
