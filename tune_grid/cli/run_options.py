"""Run-config options: one command-line option per :class:`~tune_grid.config.RunConfig` key.

``--train-batch-size``, ``--policy-sharing``, ``--share-reward/--no-share-reward``,
``--hidden-sizes 256x256``...: each with its field's docstring and default as help; ``--config
FILE.yaml`` sets the same keys and options on the command line win over the file. Used by
``train`` and ``bench train``.
"""

from __future__ import annotations

import argparse
import types
import typing
from pathlib import Path
from typing import Any

from tune_grid.config import ConfigError, RunConfig, field_docs, option_name

__all__ = ["option_name"]  # re-exported: the command-line spelling of a run-config key

RUN_GROUP = "run config (PPO, layout, resources, environment)"


def _metavar(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "{" + ",".join(str(v) for v in typing.get_args(tp)) + "}"
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return (_metavar(inner[0]) if len(inner) == 1 else "VALUE") + "|none"
    if origin is tuple:
        return "AxB"
    return {int: "INT", float: "FLOAT", str: "TEXT"}.get(tp, "VALUE")


def parse_cli_value(key: str, text: str) -> Any:
    """Turn one command-line string into the typed value RunConfig expects (ConfigError if not)."""
    tp = typing.get_type_hints(RunConfig)[key]
    origin = typing.get_origin(tp)
    options = typing.get_args(tp) if origin in (typing.Union, types.UnionType) else (tp,)
    if type(None) in options and text.strip().lower() in ("none", "null"):
        return None
    inner = [t for t in options if t is not type(None)]
    target = inner[0] if len(inner) == 1 else tp
    if target is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{key}: expected an integer, got {text!r}") from None
    if target is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{key}: expected a number, got {text!r}") from None
    return text  # Literal, str and "256x256" sizes are checked by RunConfig itself


def add_run_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per RunConfig key; only options given on the command line reach the namespace."""
    hints = typing.get_type_hints(RunConfig)
    defaults = RunConfig()
    docs = field_docs(RunConfig)
    group = parser.add_argument_group(RUN_GROUP)
    for key in RunConfig.field_names():
        tp = hints[key]
        default = getattr(defaults, key)
        shown = "x".join(map(str, default)) if isinstance(default, tuple) else default
        help_text = f"{docs.get(key, '')} (default: {shown})".strip()
        names = [option_name(key)]
        if key.endswith("_"):
            names.append("--" + key.replace("_", "-").rstrip("-") + "_")
        if tp is bool:
            group.add_argument(
                *names,
                dest=key,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_text,
            )
        else:
            group.add_argument(
                *names, dest=key, default=argparse.SUPPRESS, metavar=_metavar(tp), help=help_text
            )


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (or JSON) mapping of RunConfig keys; dashes in keys are accepted."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: no such file") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"config file {path}: cannot read YAML ({first})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of run-config keys")
    values = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        values["lambda_" if name == "lambda" else name] = value
    return values


def run_config_from_args(args: argparse.Namespace) -> tuple[RunConfig, list[str]]:
    """RunConfig from defaults < ``--config`` file < explicit options; also the explicit keys."""
    values: dict[str, Any] = {}
    config_file = getattr(args, "config", None)
    if config_file:
        try:
            values.update(RunConfig.from_dict(load_config_file(config_file)).to_dict())
        except ConfigError as exc:
            if str(exc).startswith("config file"):
                raise
            raise ConfigError(f"config file {config_file}: {exc}") from None
    given = [key for key in RunConfig.field_names() if hasattr(args, key)]
    for key in given:
        value = getattr(args, key)
        values[key] = parse_cli_value(key, value) if isinstance(value, str) else value
    return RunConfig.from_dict(values), given
