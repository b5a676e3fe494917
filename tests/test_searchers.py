"""The searcher registry: options checked before Ray starts, W&B mapping, and every registered
searcher running a real 2-trial search on an embedded Ray."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tiny import tiny_search

from tune_grid.results.schema import TRIALS_FILE, read_results
from tune_grid.search.spec.searchers import SEARCHERS, Option, SearcherType, register, settings_of
from tune_grid.search.spec.space_file import SpaceFileError, load_space_file, parse_space
from tune_grid.search.spec.spaces import SweepError, wandb_sweep

BASE: dict[str, Any] = tiny_search(experiment="s")


def test_the_registry_offers_the_searchers_the_docs_name() -> None:
    assert {"random", "grid", "optuna", "optuna_gp", "optuna_cmaes", "nevergrad"} <= set(SEARCHERS)
    assert all(kind.missing() is None for kind in SEARCHERS.values())  # all install here


def test_options_are_read_with_defaults() -> None:
    spec = parse_space({**BASE, "search": {"algorithm": "optuna", "n_startup_trials": 2}})
    assert spec.search.options == {"n_startup_trials": 2}
    assert settings_of(spec) == {
        "n_startup_trials": 2,
        "multivariate": None,
        "constant_liar": None,
    }
    again = parse_space(spec.model_dump(mode="json", exclude_unset=True))  # as search.json
    assert again.search == spec.search


@pytest.mark.parametrize(
    ("search", "where", "says"),
    [
        ({"algorithm": "hebo"}, "search.algorithm", "allowed: 'random', 'grid', 'optuna'"),
        ({"algorithm": "random", "n_startup_trials": 3}, "search.n_startup_trials",
         "unknown key for searcher random; allowed: algorithm, seed"),
        ({"algorithm": "optuna", "restarts": True}, "search.restarts",
         "allowed: algorithm, seed, n_startup_trials, multivariate, constant_liar"),
        ({"algorithm": "optuna", "n_startup_trials": 0}, "search.n_startup_trials", "must be >= 1"),
        ({"algorithm": "optuna", "multivariate": "yes"}, "search.multivariate",
         "expected true or false"),
        ({"algorithm": "nevergrad", "optimizer": "Adam"}, "search.optimizer",
         "allowed: NGOpt, TwoPointsDE"),
    ],
)  # fmt: skip
def test_bad_searcher_settings_get_one_line_before_ray(
    tmp_path: Path, search: dict[str, Any], where: str, says: str
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**BASE, "search": search}))
    with pytest.raises(SpaceFileError) as info:
        load_space_file(path)
    message = str(info.value)
    assert "\n" not in message and f"{path}: {where}: " in message and says in message


def test_cli_refuses_an_unknown_searcher_with_exit_2(tmp_path: Path, run_cli: Any) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**BASE, "search": {"algorithm": "bohb"}}))
    result = run_cli("search", str(path), "--storage", str(tmp_path / "r"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "search.algorithm: got 'bohb'; allowed: 'random', 'grid', 'optuna'" in result.stderr
    assert not (tmp_path / "r").exists()


def test_population_schedulers_take_only_searchers_that_may_feed_them(
    tiny_search: Any,
) -> None:
    pbt = {
        "type": "pbt",
        "perturbation_interval": 96,
        "hyperparam_mutations": {"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2}},
    }
    with pytest.raises(SpaceFileError, match="use random, grid, got optuna_gp"):
        parse_space(tiny_search(scheduler=pbt, search={"algorithm": "optuna_gp"}))


def test_wandb_export_maps_or_refuses_each_searcher() -> None:
    for name, kind in SEARCHERS.items():
        space = dict(BASE["space"])
        if kind.grid:
            space = {"policy_sharing": space["policy_sharing"]}
        spec = parse_space({**BASE, "space": space, "search": {"algorithm": name}})
        if kind.wandb_method is None:
            with pytest.raises(SweepError, match=f"{name}: W&B sweeps have no equivalent"):
                wandb_sweep(spec)
        else:
            assert wandb_sweep(spec)["method"] == kind.wandb_method


def test_a_new_searcher_is_one_entry() -> None:
    kind = SearcherType(
        name="toy_searcher",
        summary="a test entry",
        options={"width": Option(int, 3, "a width", minimum=1)},
        build=SEARCHERS["random"].build,
        holds_space=False,
        grid=False,
        population_ok=False,
        wandb_method="random",
        requires=None,
    )
    register(kind)
    try:
        spec = parse_space({**BASE, "search": {"algorithm": "toy_searcher", "width": 5}})
        assert settings_of(spec) == {"width": 5}
        with pytest.raises(ValueError, match="already registered"):
            register(kind)
    finally:
        del SEARCHERS["toy_searcher"]


# --------------------------------------------------------------------------- real searches
@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    import ray

    from tune_grid.search.run.tuner import SearchOptions, init_ray

    init_ray(SearchOptions(num_cpus=2))
    yield
    ray.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SEARCHERS))
def test_every_searcher_runs_a_real_two_trial_search(
    local_ray: None, tmp_path: Path, name: str
) -> None:
    from tune_grid.search.pipeline import run_search
    from tune_grid.search.run.tuner import SearchOptions

    space = dict(BASE["space"])
    if SEARCHERS[name].grid:
        space = {"policy_sharing": space["policy_sharing"]}
    options = {"n_startup_trials": 1} if "n_startup_trials" in SEARCHERS[name].options else {}
    path = tmp_path / f"{name}.yaml"
    grid_once = {"num_samples": 1} if SEARCHERS[name].grid else {}  # one pass: 2 values
    path.write_text(
        yaml.safe_dump(
            {
                **BASE,
                **grid_once,
                "experiment": name,
                "space": space,
                "search": {"algorithm": name, **options},
            }
        )
    )
    outcome = run_search(
        load_space_file(path), SearchOptions(storage=str(tmp_path / "results")), space_path=path
    )
    assert outcome.finished
    trials = read_results(tmp_path / "results" / name / TRIALS_FILE, "trials").to_pylist()
    assert len(trials) == 2 and all(t["status"] == "TERMINATED" for t in trials)
    assert all(t["env_steps"] >= 192 for t in trials)
    if SEARCHERS[name].grid:
        assert {t["param_policy_sharing"] for t in trials} == {"shared", "independent"}
    else:
        lrs = [t["param_lr"] for t in trials]
        assert all(1e-4 <= lr <= 1e-2 for lr in lrs) and lrs[0] != lrs[1]
