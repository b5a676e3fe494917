"""``tune-grid train`` and ``tune-grid evaluate``: argparse builders and handlers.

Every :class:`~tune_grid.config.RunConfig` key is an option (``--train-batch-size``,
``--policy-sharing``, ``--share-reward/--no-share-reward``, ``--hidden-sizes 256x256``...), with
RunConfig's defaults; ``--config FILE.yaml`` sets the same keys, and options on the command line win
over the file. Bad input is reported in one line (``error: ...``, exit status 2) before Ray starts.
Ray, torch and RLlib are imported only once the input is valid.

Run standalone with ``python -m tune_grid.cli_train train ...`` or wire the builders into a parent
parser (see :func:`add_train_parser`).
"""

from __future__ import annotations

import argparse
import ast
import functools
import inspect
import os
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from tune_grid.config import ConfigError, EnvConfig, RunConfig

EXIT_USAGE = 2
DEFAULT_EVAL_DAYS = "all"
"""Every day of the split (366 test days take about a minute for the four policies)."""
RUN_GROUP = "run config (PPO, layout, resources, environment)"


class OneLineArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, ``<prog>: error: <message>``, exit status 2."""

    def error(self, message: str) -> NoReturn:
        _one_line_error(self, message)


def _one_line_error(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    parser.exit(EXIT_USAGE, f"{parser.prog}: error: {message}\n")


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


# --------------------------------------------------------------------------- run-config options
@functools.lru_cache(maxsize=1)
def _field_docs() -> dict[str, str]:
    """Field docstrings of EnvConfig and RunConfig (the string right after each field)."""
    docs: dict[str, str] = {}
    for cls in (EnvConfig, RunConfig):
        try:
            tree = ast.parse(inspect.getsource(cls))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, following in zip(body, body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs.setdefault(node.target.id, " ".join(following.value.value.split()))
    return docs


def option_name(key: str) -> str:
    """``train_batch_size`` -> ``--train-batch-size``; ``lambda_`` -> ``--lambda``."""
    return "--" + key.rstrip("_").replace("_", "-")


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
    docs = _field_docs()
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


# --------------------------------------------------------------------------------- train
def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``train`` to ``subparsers`` (from ``parser.add_subparsers()``); handler in ``func``."""
    parser = subparsers.add_parser(
        "train",
        help="train PPO (shared or independent policies) on the networked microgrids",
        description=(
            "Train RLlib PPO on the networked-microgrid env: one progress line per iteration, "
            "checkpoints every N iterations plus best/ (highest episode_return_mean unless "
            "--best-metric/--best-mode say otherwise) and final/, then a held-out evaluation "
            "against the baselines (table + final/evaluation.json)."
        ),
    )
    parser.error = types.MethodType(_one_line_error, parser)  # type: ignore[method-assign]
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML file of run-config keys")
    add_run_config_arguments(parser)
    group = parser.add_argument_group("run control")
    group.add_argument(
        "--iterations", type=int, metavar="N", default=50, help="iterations (default: 50)"
    )
    group.add_argument(
        "--checkpoint-freq",
        type=int,
        metavar="N",
        default=10,
        help="save checkpoint_<iteration>/ every N iterations; 0: only best/ and final/ "
        "(default: 10)",
    )
    group.add_argument(
        "--checkpoint-dir",
        metavar="DIR",
        default="runs",
        help="folder of run folders; a run writes <dir>/<run name>/ (default: runs)",
    )
    group.add_argument(
        "--resume",
        metavar="PATH",
        help="continue from a checkpoint folder (its run config; iteration, env-step and history "
        "counters continue); --iterations more iterations are run",
    )
    group.add_argument(
        "--experiment-name",
        metavar="NAME",
        help="run-name part: <env>__<name>__<seed>__<time> (ppo_<sharing>)",
    )
    group.add_argument(
        "--best-metric",
        metavar="METRIC",
        default="episode_return_mean",
        help="iteration metric that picks best/ (default: episode_return_mean)",
    )
    group.add_argument("--best-mode", choices=("max", "min"), default="max", help="(default: max)")
    group.add_argument(
        "--eval-days",
        default=DEFAULT_EVAL_DAYS,
        metavar="N|all",
        help=f"test days evaluated after training, evenly spaced; 0 skips "
        f"(default: {DEFAULT_EVAL_DAYS})",
    )
    group.add_argument("--num-cpus", type=int, metavar="N", help="CPUs for Ray (default: all)")
    group.add_argument("--wandb", action="store_true", help="log config and metrics to W&B")
    group.add_argument(
        "--wandb-project", metavar="NAME", default="tune-grid", help="(default: tune-grid)"
    )
    group.add_argument("--wandb-entity", metavar="NAME", help="W&B entity (team or user)")
    parser.set_defaults(func=run_train)
    return parser


def _parse_days(text: str | None) -> int | None:
    if text is None or str(text).lower() == "all":
        return None
    try:
        days = int(text)
    except ValueError:
        raise ConfigError(f"days: expected an integer or 'all', got {text!r}") from None
    if days < 0:
        raise ConfigError(f"days must be >= 0 or 'all', got {days}")
    return days


def fix_hash_seed() -> None:
    """Re-run this command with ``PYTHONHASHSEED=0`` unless the hash seed is already fixed.

    RLlib iterates sets of agent-id strings (the order follows the string-hash seed), so without a
    fixed hash seed the same ``--seed`` does not repeat a run. Only for a real command line: inside
    pytest (or when the hash seed is set) nothing happens.
    """
    if os.environ.get("PYTHONHASHSEED") is not None or "pytest" in sys.modules:
        return
    argv = getattr(sys, "orig_argv", None)
    if not argv or "train" not in argv:
        return
    os.environ["PYTHONHASHSEED"] = "0"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *argv[1:]])


def run_train(args: argparse.Namespace) -> int:
    """Handler of ``tune-grid train``: validate everything, then train. Returns the exit status."""
    try:
        run, given = run_config_from_args(args)
        eval_days = _parse_days(args.eval_days)
    except ConfigError as exc:
        return _fail(str(exc))
    from tune_grid.training.checkpoints import CheckpointError, read_meta
    from tune_grid.training.runner import TrainOptions

    options = TrainOptions(
        iterations=args.iterations,
        checkpoint_freq=args.checkpoint_freq,
        checkpoint_dir=args.checkpoint_dir,
        resume=args.resume,
        experiment_name=args.experiment_name,
        wandb=args.wandb,
        wandb_project=args.wandb_project,
        wandb_entity=args.wandb_entity,
        eval_days=eval_days,
        best_metric=args.best_metric,
        best_mode=args.best_mode,
        num_cpus=args.num_cpus,
    )
    try:
        options.validate()
    except ValueError as exc:
        return _fail(str(exc))
    if args.resume is not None:
        if given or args.config:
            flags = [option_name(k) for k in given] + (["--config"] if args.config else [])
            return _fail(
                f"--resume continues the checkpoint's own run config; drop {', '.join(flags)}"
            )
        try:
            read_meta(args.resume)
        except CheckpointError as exc:
            return _fail(str(exc))

    fix_hash_seed()
    from tune_grid.training.runner import train

    printer = functools.partial(print, flush=True)
    try:
        train(None if args.resume else run, options, print_fn=printer)
    except CheckpointError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130
    return 0


# ------------------------------------------------------------------------------ evaluate
def add_evaluate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``evaluate`` to ``subparsers``; handler in ``func``."""
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a checkpoint against do-nothing, random and rule-based",
        description=(
            "Run a checkpoint's deterministic policy and the three baselines on whole days of a "
            "data split; print a table and write evaluation.json into the checkpoint folder."
        ),
    )
    parser.error = types.MethodType(_one_line_error, parser)  # type: ignore[method-assign]
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint folder")
    parser.add_argument(
        "--days",
        default=DEFAULT_EVAL_DAYS,
        metavar="N|all",
        help=f"N days evenly spaced over the split, or all (default: {DEFAULT_EVAL_DAYS})",
    )
    parser.add_argument(
        "--split", choices=("test", "train"), default="test", help="(default: test)"
    )
    parser.set_defaults(func=run_evaluate)
    return parser


def run_evaluate(args: argparse.Namespace) -> int:
    """Handler of ``tune-grid evaluate``. Returns the exit status."""
    try:
        days = _parse_days(args.days)
        if days == 0:
            raise ConfigError("days must be >= 1 or 'all', got 0")
    except ConfigError as exc:
        return _fail(str(exc))
    from tune_grid.training.checkpoints import CheckpointError, read_meta

    try:
        read_meta(args.checkpoint)
    except CheckpointError as exc:
        return _fail(str(exc))
    from tune_grid.training.evaluate import EVALUATION_FILE, evaluate_checkpoint, format_table

    try:
        report = evaluate_checkpoint(args.checkpoint, split=args.split, days=days)
    except CheckpointError as exc:
        return _fail(str(exc))
    except ValueError as exc:  # e.g. more days than the split has
        return _fail(str(exc))
    print(format_table(report))
    print(f"written to {Path(args.checkpoint) / EVALUATION_FILE}")
    return 0


# ---------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    """A standalone ``tune-grid`` parser with just ``train`` and ``evaluate``."""
    parser = OneLineArgumentParser(prog="tune-grid", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_train_parser(subparsers)
    add_evaluate_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tune_grid.cli_train {train,evaluate} ...``."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
