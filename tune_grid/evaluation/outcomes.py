"""`tune-grid outcomes`: what the trained policies of a search actually do on held-out days.

Every trial's checkpoint (each seed's policy) is rolled on the same evenly spaced test days under
its own env config, and the days' means of cost, safety and behaviour (DSO imports and exports,
peak import, how flat the exchange profiles are, diesel energy, battery throughput, P2P trades;
see :data:`tune_grid.env.evaluation.BEHAVIOUR_COLUMNS`) are reported per seed and grouped by the
chosen searched parameters (e.g. the protocol pair), with the spread over seeds. This is how a
protocol search shows what each protocol made the agents learn, beyond the objective.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from tune_grid.config import ConfigError
from tune_grid.env.evaluation import BEHAVIOUR_COLUMNS
from tune_grid.results.schema import PARAM_PREFIX, TRIALS_FILE, read_results

OUTCOMES_FILE = "outcomes.parquet"
REPORTED_COLUMNS = ("cost", "safety", "violation_hours", *BEHAVIOUR_COLUMNS)
SPLIT = "test"


def seed_outcomes(
    results_dir: str | Path,
    days: int,
    by: Sequence[str],
    print_fn: Callable[[str], None] = print,
) -> pd.DataFrame:
    """One row per trial and seed: the ``by`` parameters and the mean per test day of
    ``REPORTED_COLUMNS``. Trials without a checkpoint are skipped with a warning."""
    from tune_grid.env.evaluation import evaluate
    from tune_grid.training.checkpoints import read_meta, seed_dirs
    from tune_grid.training.policy import TrainedPolicy

    results_dir = Path(results_dir)
    trials = read_results(results_dir / TRIALS_FILE, "trials").to_pandas()
    columns = [f"{PARAM_PREFIX}{name}" for name in by]
    missing = [name for name, col in zip(by, columns, strict=True) if col not in trials.columns]
    if missing:
        searched = sorted(c[len(PARAM_PREFIX) :] for c in trials.columns if c.startswith("param_"))
        raise ConfigError(
            f"--by {', '.join(missing)}: not parameters of this search; allowed: "
            f"{', '.join(searched)}"
        )
    rows = []
    for trial in trials.to_dict("records"):
        checkpoint = trial["checkpoint_path"]
        seeds = seed_dirs(checkpoint) if checkpoint else []
        if not seeds:
            print_fn(f"warning: trial {trial['trial_id']} has no checkpoint, skipped")
            continue
        for seed_dir in seeds:
            env_config = read_meta(seed_dir).run_config.env_config().to_dict()
            per_day = evaluate(TrainedPolicy.load(seed_dir), SPLIT, days, env_config)
            row = {"trial_id": trial["trial_id"], "seed_dir": seed_dir.name}
            row.update({name: trial[col] for name, col in zip(by, columns, strict=True)})
            row.update({c: float(per_day[c].mean()) for c in REPORTED_COLUMNS})
            row["days"] = len(per_day)
            rows.append(row)
        print_fn(f"evaluated trial {trial['trial_id']} ({len(seeds)} seeds)")
    return pd.DataFrame(rows)


def group_outcomes(per_seed: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Mean and standard deviation over seeds (and trials) of every outcome, per ``by`` group."""
    grouped = per_seed.groupby(list(by), dropna=False)[list(REPORTED_COLUMNS)]
    table = grouped.mean()
    spread = grouped.std(ddof=1).add_suffix("_sd")
    table = table.join(spread)
    table.insert(0, "policies", per_seed.groupby(list(by), dropna=False).size())
    return table.reset_index()


def format_outcomes(table: pd.DataFrame, by: Sequence[str]) -> str:
    """Fixed-width table: each outcome as ``mean ±sd`` (sd over the group's policies)."""
    header = [*by, "n", *REPORTED_COLUMNS]
    lines = []
    for row in table.to_dict("records"):
        cells = [str(row[name]) for name in by] + [str(row["policies"])]
        for column in REPORTED_COLUMNS:
            sd = row[f"{column}_sd"]
            cells.append(f"{row[column]:.2f}" + ("" if math.isnan(sd) else f" ±{sd:.2f}"))
        lines.append(cells)
    widths = [max(len(h), *(len(r[i]) for r in lines)) for i, h in enumerate(header)]
    out = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    out += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in lines]
    return "\n".join(out)


def run_outcomes(
    results_dir: str | Path,
    days: int,
    by: Sequence[str],
    print_fn: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Evaluate, print the grouped table and write ``outcomes.parquet`` (one row per seed)."""
    per_seed = seed_outcomes(results_dir, days, by, print_fn)
    if per_seed.empty:
        raise ConfigError(f"{results_dir}: no trial has a checkpoint to evaluate")
    per_seed.to_parquet(Path(results_dir) / OUTCOMES_FILE, index=False)
    table = group_outcomes(per_seed, by)
    print_fn(
        f"test outcomes per day (mean over {int(per_seed['days'].iloc[0])} test days, "
        f"all three microgrids; ±: sd over seeds):"
    )
    print_fn(format_outcomes(table, by))
    print_fn(f"wrote {Path(results_dir) / OUTCOMES_FILE}")
    return table
