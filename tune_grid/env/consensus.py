"""Average consensus among microgrids over a communication graph.

Each agent starts from its own local values and, each round, replaces them by a weighted average
of its own and its neighbours' values, ``x <- W x``, with Metropolis-Hastings weights

    W_ij = 1 / (1 + max(d_i, d_j))   for neighbours i ~ j,     W_ii = 1 - sum_{j ~ i} W_ij,

where ``d_i`` is the degree of agent i. W is symmetric and doubly stochastic, so on a connected
graph every agent's estimate converges to the exact average of the initial values. Rounds stop
early once all agents agree to within ``tol`` (the spread, max - min over agents, of every
quantity), and never exceed ``max_rounds``.

Topologies over agents ``0..n-1``: ``line`` (i ~ i+1), ``ring`` (line plus n-1 ~ 0; for n = 3 it
is the complete graph) and ``complete`` (everyone ~ everyone). On the complete graph one round
gives the exact average; on the 3-agent line the disagreement shrinks by 2/3 per round.
"""

from __future__ import annotations

import numpy as np

TOPOLOGIES: tuple[str, ...] = ("line", "ring", "complete")
CONSENSUS_TOL = 1e-9


def adjacency(topology: str, n: int) -> np.ndarray:
    """Boolean (n, n) adjacency matrix of ``topology`` (no self loops)."""
    if n < 1:
        raise ValueError(f"need at least one agent, got {n}")
    adj = np.zeros((n, n), dtype=bool)
    if topology == "complete":
        adj[:] = True
    elif topology in ("line", "ring"):
        idx = np.arange(n - 1)
        adj[idx, idx + 1] = adj[idx + 1, idx] = True
        if topology == "ring" and n > 2:
            adj[0, n - 1] = adj[n - 1, 0] = True
    else:
        raise ValueError(f"unknown topology {topology!r}; allowed: {', '.join(TOPOLOGIES)}")
    np.fill_diagonal(adj, False)
    return adj


def metropolis_weights(adj: np.ndarray) -> np.ndarray:
    """Metropolis-Hastings weight matrix of an undirected graph (symmetric, doubly stochastic)."""
    adj = np.asarray(adj, dtype=bool)
    if not np.array_equal(adj, adj.T):
        raise ValueError("the communication graph must be undirected (symmetric adjacency)")
    degree = adj.sum(axis=1)
    weights = np.where(adj, 1.0 / (1.0 + np.maximum.outer(degree, degree)), 0.0)
    np.fill_diagonal(weights, 1.0 - weights.sum(axis=1))
    return weights


def weight_powers(weights: np.ndarray, max_rounds: int) -> np.ndarray:
    """``W^1 .. W^max_rounds`` stacked, shape (max_rounds, n, n): round k's iterate is W^k x."""
    n = len(weights)
    powers = np.empty((max_rounds, n, n))
    current = np.eye(n)
    for k in range(max_rounds):
        current = weights @ current
        powers[k] = current
    return powers


def run_consensus(
    values: np.ndarray,
    weights: np.ndarray,
    max_rounds: int,
    tol: float = CONSENSUS_TOL,
    *,
    powers: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Run at most ``max_rounds`` averaging rounds on ``values`` (agents x quantities).

    Returns each agent's estimates after the last round and the number of rounds run (0 when the
    agents already agree to within ``tol``). ``powers`` (from :func:`weight_powers`, at least
    ``max_rounds`` deep) evaluates all rounds in one vectorized product.
    """
    if max_rounds < 0:
        raise ValueError(f"max_rounds must be >= 0, got {max_rounds}")
    x = np.asarray(values, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if max_rounds == 0 or (x.max(axis=0) - x.min(axis=0)).max() <= tol:
        return x.copy(), 0
    if powers is None:
        powers = weight_powers(weights, max_rounds)
    iterates = powers[:max_rounds] @ x  # (rounds, agents, quantities)
    spread = (iterates.max(axis=1) - iterates.min(axis=1)).max(axis=1)
    agreed = np.flatnonzero(spread <= tol)
    rounds = int(agreed[0]) + 1 if agreed.size else max_rounds
    return iterates[rounds - 1], rounds
