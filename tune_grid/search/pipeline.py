"""A whole search, from a validated file to its answer.

1. Tune runs the trials (:mod:`tune_grid.search.run`) and the Parquet files are exported;
2. the top trials and the baselines are scored on the test days
   (:mod:`tune_grid.search.answer.heldout`);
3. with ``confirm:``, the finalists are retrained on fresh seeds and raced
   (:mod:`tune_grid.search.answer.confirmation`), which gives the answer.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tune_grid.results.export import SearchMeta, export_experiment, read_search_meta
from tune_grid.results.schema import TRIALS_FILE, read_results
from tune_grid.search.run.tuner import (
    SearchOptions,
    SearchPaths,
    init_ray,
    prepare,
    run_tune,
    search_meta,
    validation_oracle,
)
from tune_grid.search.spec.space_file import SpaceFile


@dataclass
class SearchOutcome:
    """What a finished (or interrupted) search produced."""

    spec: SpaceFile
    paths: SearchPaths
    trials: int
    iteration_rows: int
    finished: bool
    summary: str = ""
    answer: dict[str, Any] | None = None
    """The confirmation stage's answer (``answer.json``), when the file has ``confirm:``."""


def run_search(
    spec: SpaceFile,
    options: SearchOptions | None = None,
    space_path: str | Path | None = None,
    print_fn: Callable[[str], None] = print,
) -> SearchOutcome:
    """Run (or resume) the search, export Parquet, evaluate on test days, print the best."""
    import ray

    options = options or SearchOptions()
    spec, paths = prepare(spec, options, space_path)
    started = init_ray(options)
    try:
        print_fn(f"results: {paths.results_dir}")
        if options.address is not None:
            print_fn(f"cluster {options.address}: every node must reach {paths.results_dir}")
        if spec.search.algorithm.startswith("optuna"):
            print_fn(f"optuna study {spec.experiment!r}: optuna-dashboard {paths.optuna_url}")
        meta = read_search_meta(paths.results_dir) or search_meta(spec)
        oracle = validation_oracle(spec, print_fn)
        try:
            run_tune(spec, paths, options, print_fn, oracle)
        finally:
            trials, rows = _final_export(paths, meta, print_fn)
        statuses = read_results(paths.results_dir / TRIALS_FILE, "trials").column("status")
        finished = all(s in ("TERMINATED", "ERROR") for s in statuses.to_pylist())
        outcome = SearchOutcome(spec, paths, trials, rows, finished)
        if not finished:
            print_fn(f"search interrupted: continue it with --resume ({paths.results_dir})")
            return outcome
        if options.evaluate and spec.evaluation.enabled:
            from tune_grid.search.answer.heldout import evaluate_search, format_summary

            report = evaluate_search(spec, paths.results_dir, print_fn=print_fn)
            trials, rows = _final_export(paths, meta, print_fn)
            outcome.summary = format_summary(spec, paths.results_dir, report)
            print_fn(outcome.summary)
        outcome.trials, outcome.iteration_rows = trials, rows
        print_fn(f"wrote {trials} trials, {rows} iteration rows to {paths.results_dir}")
        if options.confirm and spec.confirm is not None:
            from tune_grid.search.answer.confirmation import run_confirmation
            from tune_grid.search.answer.summary import format_answer

            outcome.answer = run_confirmation(spec, paths.results_dir, oracle, print_fn)
            if options.print_answer:
                print_fn(format_answer(outcome.answer))
        return outcome
    finally:
        if started:
            ray.shutdown()
        sys.stdout.flush()


def _final_export(
    paths: SearchPaths, meta: SearchMeta, print_fn: Callable[[str], None]
) -> tuple[int, int]:
    """One consistent export from the experiment folder, merged into the existing files.

    Trials and iteration rows the Parquet files already had are kept (the experiment folder wins
    where both have a row): the final pass never loses what the incremental mirror showed.
    """
    try:
        return export_experiment(paths.results_dir, paths.results_dir, meta, merge=True)
    except Exception as exc:  # noqa: BLE001 - keep the incremental files and say how to retry
        print_fn(
            f"warning: final export failed ({exc}); retry: tune-grid export {paths.results_dir}"
        )
        return 0, 0
