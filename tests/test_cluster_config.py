"""``cluster.yaml`` and ``cluster-onprem.yaml`` against Ray's own cluster-config schema and
launcher preparation (offline), plus the promises docs/cluster.md makes about them: token auth on
every ``ray start``, tune-grid installed as the README says, Ray pinned to the installed version,
no trials on the AWS head, every shipped search's trials fitting every node type by CPUs and
memory, and every ``tune-grid search`` command in the guide parses."""

from __future__ import annotations

import copy
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"aws": REPO_ROOT / "cluster.yaml", "onprem": REPO_ROOT / "cluster-onprem.yaml"}
GUIDE = REPO_ROOT / "docs" / "cluster.md"
COMMAND_KEYS = (
    "initialization_commands",
    "setup_commands",
    "head_setup_commands",
    "worker_setup_commands",
    "head_start_ray_commands",
    "worker_start_ray_commands",
)


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load(CONFIGS[name].read_text())


def ray_schema() -> dict[str, Any]:
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def all_commands(config: dict[str, Any]) -> list[str]:
    commands = [c for key in COMMAND_KEYS for c in config.get(key) or []]
    for node_type in (config.get("available_node_types") or {}).values():
        for key in ("initialization_commands", "worker_setup_commands"):
            commands += node_type.get(key) or []
    return commands


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_matches_rays_cluster_schema(name: str) -> None:
    """The file as written, and as ``ray up`` prepares it (defaults merged, node types filled)."""
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = load(name)
    jsonschema.validate(config, ray_schema())
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    assert prepared["cluster_name"] == config["cluster_name"]
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_schema_catches_a_misspelled_key() -> None:
    """The check above is not vacuous: Ray's schema rejects unknown keys."""
    import jsonschema

    config = load("aws")
    config["idle_timeout_minute"] = config.pop("idle_timeout_minutes")
    with pytest.raises(jsonschema.ValidationError, match="idle_timeout_minute"):
        jsonschema.validate(config, ray_schema())


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_token_auth_on_every_node(name: str) -> None:
    config = load(name)
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    ray_starts = [c for c in starts if "ray start" in c]
    assert len(ray_starts) == 2
    for command in ray_starts:
        assert "export RAY_AUTH_MODE=token;" in command, command
    assert any("export RAY_AUTH_MODE=token" in c for c in config["setup_commands"])
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_installs_tune_grid_as_the_readme_does(name: str) -> None:
    """torch pinned as in the README, then ``pip install -e .`` of the copied repository, then
    Ray pinned to the version installed here (the version ``ray up`` runs with)."""
    import ray

    readme_pin = re.search(
        r"pip install (?:-q )?(torch==[\w.]+)", (REPO_ROOT / "README.md").read_text()
    )
    assert readme_pin, "README no longer pins torch"
    setup = [c.strip() for c in load(name)["setup_commands"]]
    torch_at = setup.index(f"pip install -q {readme_pin.group(1)}")
    tune_grid_at = setup.index("cd ~/tune-grid && pip install -q -e .")
    ray_at = setup.index(f'pip install -q "ray[default,tune,rllib]=={ray.__version__}"')
    assert torch_at < tune_grid_at < ray_at


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_file_mounts_exist_and_cover_the_package(name: str) -> None:
    mounts = load(name)["file_mounts"]
    for remote, local in mounts.items():
        if local.startswith("~"):
            continue
        assert (REPO_ROOT / local).exists(), f"{remote}: {local} not in the repository"
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    needed = {"pyproject.toml", "README.md", "search_spaces"}
    needed |= {p.rstrip("*") for p in re.findall(r'"(\w+)\*"', pyproject.split("packages.find")[1])}
    copied = {Path(local).name for local in mounts.values()}
    assert needed <= copied, f"not copied to the nodes: {sorted(needed - copied)}"


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_commands_are_valid_bash(name: str) -> None:
    for command in all_commands(load(name)):
        result = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True)
        assert result.returncode == 0, f"{command}\n{result.stderr}"


SPACES = sorted((REPO_ROOT / "search_spaces").glob("*.yaml"))
GIB = 1024**3
RAY_MEMORY_SHARE = 0.7
"""Share of a machine's memory Ray lends to tasks by default (the rest: its object store)."""


def largest_trials() -> dict[str, dict[str, float]]:
    """Per shipped search file: the most CPUs and memory bytes any of its trials asks for."""
    from tune_grid.search.run.resources import largest_trial
    from tune_grid.search.spec.space_file import load_space_file

    return {path.name: largest_trial(load_space_file(path)) for path in SPACES}


def node_types() -> dict[str, dict[str, float]]:
    """The resources trials can use on each node type of both cluster files.

    cluster.yaml declares them per worker type (the head has ``CPU: 0``). cluster-onprem.yaml's
    machines are detected by Ray; its header states the smallest machine it supports, whose
    head keeps two CPUs (``--num-cpus`` of its start command) and whose memory Ray lends at
    :data:`RAY_MEMORY_SHARE` after 1 GiB for the OS.
    """
    aws = load("aws")
    types = {
        f"cluster.yaml:{key}": node_type["resources"]
        for key, node_type in aws["available_node_types"].items()
        if key != aws["head_node_type"]
    }
    text = CONFIGS["onprem"].read_text()
    match = re.search(r"Smallest machine: (\d+) CPUs and (\d+) GiB of memory", text)
    assert match, "cluster-onprem.yaml no longer states its smallest machine"
    cpus, memory_gib = int(match.group(1)), int(match.group(2))
    head_start = " ".join(load("onprem")["head_start_ray_commands"])
    num_cpus = re.search(r"--num-cpus=\$\(\( (.*?) \)\)", head_start)
    assert num_cpus, head_start
    formula = num_cpus.group(1).replace("$(nproc)", str(cpus))
    head_cpus = int(
        subprocess.run(
            ["bash", "-c", f"echo $(( {formula} ))"], capture_output=True, text=True, check=True
        ).stdout
    )
    memory = RAY_MEMORY_SHARE * (memory_gib - 1) * GIB
    types["cluster-onprem.yaml:head"] = {"CPU": head_cpus, "memory": memory}
    types["cluster-onprem.yaml:worker"] = {"CPU": cpus, "memory": memory}
    return types


def test_aws_head_runs_no_trials() -> None:
    config = load("aws")
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"] == {"CPU": 0}
    for key in ("idle_timeout_minutes", "upscaling_speed", "max_workers"):
        assert config[key] > 0


def test_every_shipped_space_fits_every_node_type_by_cpu_and_memory() -> None:
    """The largest trial of each search file fits each node type that runs trials, by CPUs and
    by memory (so Ray never packs a node past its memory and no trial waits for a node that
    cannot hold it)."""
    types = node_types()
    assert len(types) >= 3
    for space, trial in largest_trials().items():
        assert trial["memory"] > 0, f"{space}: trials ask for no memory"
        for node, resources in types.items():
            for key in ("CPU", "memory"):
                assert trial[key] <= resources[key], (
                    f"{space}'s largest trial needs {key} {trial[key]:g} > {resources[key]:g} "
                    f"on {node}"
                )


def test_aws_workers_cover_the_full_search() -> None:
    """max_workers of the worker types hold full.yaml's max_concurrent_trials of its largest
    trials (each node as many as its CPUs and its memory both allow)."""
    from tune_grid.search.spec.space_file import load_space_file

    config = load("aws")
    full = load_space_file(REPO_ROOT / "search_spaces" / "full.yaml")
    trial = largest_trials()["full.yaml"]
    slots = 0
    for key, node_type in config["available_node_types"].items():
        if key == config["head_node_type"]:
            continue
        per_node = min(int(node_type["resources"][k] // trial[k]) for k in ("CPU", "memory"))
        assert node_type["min_workers"] <= node_type["max_workers"] <= config["max_workers"]
        slots += per_node * node_type["max_workers"]
    assert slots >= (full.max_concurrent_trials or 1)


def test_files_state_the_measured_requests() -> None:
    """The figures the cluster files and the guide quote are the model's."""
    from tune_grid.search.run.resources import trial_resources_of
    from tune_grid.search.spec.space_file import load_space_file

    full = load_space_file(REPO_ROOT / "search_spaces" / "full.yaml")
    largest = largest_trials()["full.yaml"]["memory"] / GIB
    smallest = min(
        trial_resources_of(full).totals(
            {**full.fixed_config(), "train_batch_size": 1920, "hidden_sizes": [64, 64]},
            full.seeds,
        )["memory"]
        / GIB,
        largest,
    )
    aws, onprem, guide = (
        CONFIGS["aws"].read_text(),
        CONFIGS["onprem"].read_text(),
        GUIDE.read_text(),
    )
    assert f"{smallest:.2f} to {largest:.2f} GiB" in aws
    assert f"at most {largest:.2f} GiB" in onprem
    assert f"{largest:.2f} GiB" in guide
    for path in (CONFIGS["aws"], CONFIGS["onprem"], *SPACES):  # the 7-CPU trials are gone
        assert not re.search(r"\b7[ -]CPU", path.read_text()), path.name


def guide_commands(program: str) -> list[list[str]]:
    """Every ``program ...`` command in the guide's code blocks (continuations joined), as
    arguments after the program name."""
    text = GUIDE.read_text()
    blocks = re.findall(r"```(?:bash|sh|console)?\n(.*?)```", text, flags=re.S)
    commands = []
    for block in blocks:
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" #", 1)[0]
            if program in line:
                tail = line[line.index(program) + len(program) :]
                commands.append(shlex.split(tail.strip().strip('"')))
    return commands


def test_guide_search_commands_parse() -> None:
    """``tune-grid search ...`` in docs/cluster.md: known flags, existing search files."""
    from tune_grid.cli import build_parser

    commands = guide_commands("tune-grid search")
    assert len(commands) >= 3
    for args in commands:
        parsed = build_parser().parse_args(["search", *args])
        if not parsed.space.startswith("~"):
            assert (REPO_ROOT / parsed.space).exists(), parsed.space
        if parsed.address is not None:
            assert parsed.storage and parsed.storage.startswith("/"), args


def test_guide_names_existing_files() -> None:
    text = GUIDE.read_text()
    for path in set(re.findall(r"\b((?:search_spaces|tests|docs)/[\w./-]+\.(?:yaml|py|md))", text)):
        assert (REPO_ROOT / path).exists(), path
    for path in ("cluster.yaml", "cluster-onprem.yaml"):
        assert path in text
