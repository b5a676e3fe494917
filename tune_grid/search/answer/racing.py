"""Racing the finalists of a search on fresh seeds: which configuration to recommend.

Procedure (a paired race after Birattari et al.'s F-race, with a paired t-test on the $/day
difference in place of Friedman's rank test, because costs share one scale):

* Every configuration still in the race trains the same fresh seeds in each round, and every run
  is scored on the same test days, so any two configurations' costs form a (seeds, days) matrix
  pair, paired by seed and by day.
* After a round the current best is the configuration with the lowest mean daily cost over its
  seeds and days. Each other one is compared with it by the mean paired difference and its
  interval, which counts both the seed-to-seed and the day-to-day spread of the difference
  (:func:`tune_grid.env.day_intervals.paired_difference`).
* A configuration whose interval lies wholly above 0 is separated as worse and dropped (from the
  second seed on: with one seed the interval knows nothing of seed noise). One that failed to
  train is dropped as failed.
* The race stops when one configuration remains, when every remaining one is within
  ``tolerance`` $/day of the best (its whole interval inside +-tolerance), or when the seed
  budget is spent.

Why paired, and why t rather than a bootstrap: a winter day costs several times a spring day,
so unpaired intervals are wide and separate little; pairing by day cancels that swing. Races
run few seeds (2 per round here), and a percentile bootstrap over two seeds calls about one in
four null differences separated, while Student's t with the seeds' one degree of freedom keeps
the error rate at the stated level. The difference is reported in $/day, the unit a user decides
in. The procedure is deterministic, so a resumed race replays the same decisions from the same
rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tune_grid.env.day_intervals import paired_difference

MIN_SEEDS_TO_DROP = 2
"""Seeds a configuration needs before the race may drop it as worse."""


@dataclass(frozen=True)
class RaceRules:
    """The ``confirm:`` settings the race reads."""

    seeds: int
    seeds_per_round: int
    confidence: float = 0.95
    tolerance: float = 5.0

    def round_seeds(self, fresh: Sequence[int], round_index: int) -> list[int]:
        """The fresh seeds every remaining configuration trains in round ``round_index``."""
        start = round_index * self.seeds_per_round
        return list(fresh[start : min(start + self.seeds_per_round, self.seeds)])

    @property
    def rounds(self) -> int:
        return -(-self.seeds // self.seeds_per_round)


@dataclass(frozen=True)
class Comparison:
    """``name`` against ``reference``: mean paired difference (name - reference) in $/day."""

    name: str
    reference: str
    seeds: int
    difference: float
    low: float
    high: float
    verdict: str
    """``worse`` / ``better`` (separated), ``equivalent`` (inside +-tolerance) or ``not
    separated``."""

    def text(self) -> str:
        return (
            f"{self.name} vs {self.reference}: {self.difference:+.1f} $/day "
            f"[{self.low:+.1f}, {self.high:+.1f}] over {self.seeds} seeds ({self.verdict})"
        )


@dataclass
class RoundRecord:
    """One round of the race: what ran, the comparisons with the best, and who was dropped."""

    round: int
    seeds: list[int]
    best: str
    comparisons: list[Comparison]
    dropped: list[str]
    failed: list[str]
    remaining: list[str]


@dataclass
class RaceState:
    """The race replayed from the finished rounds' costs."""

    remaining: list[str]
    history: list[RoundRecord] = field(default_factory=list)
    stop_reason: str | None = None
    """None while another round is due."""

    @property
    def next_round(self) -> int:
        return len(self.history)

    @property
    def finished(self) -> bool:
        return self.stop_reason is not None

    @property
    def best(self) -> str | None:
        return self.history[-1].best if self.history else None

    def to_json(self) -> dict[str, Any]:
        return {
            "remaining": self.remaining,
            "stop_reason": self.stop_reason,
            "rounds": [asdict(r) for r in self.history],
        }


def compare(
    reference: np.ndarray,
    other: np.ndarray,
    name: str,
    reference_name: str,
    rules: RaceRules,
) -> Comparison:
    """Paired comparison of two (seeds, days) cost matrices with the race's verdict."""
    difference, low, high = paired_difference(reference, other, confidence=rules.confidence)
    if low > 0:
        verdict = "worse"
    elif high < 0:
        verdict = "better"
    elif -rules.tolerance <= low and high <= rules.tolerance:
        verdict = "equivalent"
    else:
        verdict = "not separated"
    return Comparison(name, reference_name, other.shape[0], difference, low, high, verdict)


def _mean_cost(matrix: np.ndarray) -> float:
    return float(matrix.mean()) if matrix.size else math.inf


def race(
    names: Sequence[str],
    costs: Mapping[str, Mapping[int, np.ndarray | None]],
    fresh: Sequence[int],
    rules: RaceRules,
) -> RaceState:
    """Replay the race over the rounds whose runs are all in ``costs``.

    ``costs[name][seed]`` is that run's per-day test costs, or None when it failed. A round is
    judged once every configuration still in the race has all of its seeds.
    """
    state = RaceState(remaining=list(names))
    for round_index in range(rules.rounds):
        seeds = rules.round_seeds(fresh, round_index)
        if not all(seed in costs.get(n, {}) for n in state.remaining for seed in seeds):
            return state  # this round has not finished
        done = [s for r in range(round_index + 1) for s in rules.round_seeds(fresh, r)]
        failed = [n for n in state.remaining if any(costs[n][s] is None for s in done)]
        alive = [n for n in state.remaining if n not in failed]
        matrices = {n: np.stack([np.asarray(costs[n][s], float) for s in done]) for n in alive}
        record = RoundRecord(round_index, seeds, "", [], [], failed, [])
        if alive:
            best = min(alive, key=lambda n: (_mean_cost(matrices[n]), names.index(n)))
            record.best = best
            for name in alive:
                if name == best:
                    continue
                comparison = compare(matrices[best], matrices[name], name, best, rules)
                record.comparisons.append(comparison)
                if comparison.verdict == "worse" and len(done) >= MIN_SEEDS_TO_DROP:
                    record.dropped.append(name)
        state.remaining = [n for n in alive if n not in record.dropped]
        record.remaining = list(state.remaining)
        state.history.append(record)
        if len(state.remaining) <= 1:
            state.stop_reason = (
                "one configuration remains" if state.remaining else "every configuration failed"
            )
        elif all(
            c.verdict == "equivalent" for c in record.comparisons if c.name in state.remaining
        ):
            state.stop_reason = (
                f"the remaining configurations are within +-{rules.tolerance:g} $/day"
            )
        elif round_index == rules.rounds - 1:
            state.stop_reason = "seed budget spent"
        if state.finished:
            return state
    return state


def common_seed_matrices(
    first: Mapping[int, np.ndarray | None], second: Mapping[int, np.ndarray | None]
) -> tuple[np.ndarray, np.ndarray] | None:
    """The two configurations' cost matrices on the seeds both ran successfully (None: none)."""
    seeds = sorted(
        s for s in first if s in second and first[s] is not None and second[s] is not None
    )
    if not seeds:
        return None
    a = np.stack([np.asarray(first[s], float) for s in seeds])
    b = np.stack([np.asarray(second[s], float) for s in seeds])
    return a, b
