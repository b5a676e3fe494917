"""Peer-to-peer energy trading between microgrids: orders and a uniform-price double auction.

After the agents act and the power flow is solved, a microgrid that exports at its point of
connection (exchange < 0) offers its surplus and one that imports (exchange > 0) bids for its
deficit. :func:`p2p_orders` turns exchanges into orders and :func:`clear_double_auction` clears
them. Traded energy is a financial reassignment: the power flow (physics) is unchanged, but the
traded MWh are paid to the peer at the clearing price instead of being settled with the DSO.

Clearing rule (uniform-price double auction, ties shared pro rata):

1. Orders at the same price form one price level. Offer levels are sorted by ascending price,
   bid levels by descending price.
2. Walk both curves: while the cheapest remaining offer level is priced at or below the dearest
   remaining bid level, trade ``min(remaining offer, remaining bid)`` between them.
3. The uniform price is the midpoint of the interval of market-clearing prices
   ``[max(o_marg, b_next), min(b_marg, o_next)]``: ``o_marg`` / ``b_marg`` are the prices of the
   last (marginal) accepted offer / bid level, ``o_next`` / ``b_next`` the best offer / bid
   with quantity left (the marginal level itself when it is only partly filled; +inf / -inf
   when that side is exhausted). Every accepted seller gets at least its offer, every accepted
   buyer pays at most its bid, and the price supports the traded quantity as a competitive
   equilibrium: a short side (less supply than demand) sets the price at the long side's order.
4. Within a level, the level's traded quantity is shared in proportion to the order sizes.

Payments are ``price * quantity``: what buyers pay is exactly what sellers receive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tune_grid.economics import DG_OFF_MW
from tune_grid.grid.devices import DIESEL, MICROGRIDS

QUANTITY_TOL_MW = 1e-9
"""Orders at or below this size are ignored, and remainders below it count as filled."""


@dataclass(frozen=True)
class Clearing:
    """Outcome of one auction: quantities per order (same order as the inputs) and the price."""

    sold_mw: np.ndarray
    bought_mw: np.ndarray
    price: float
    """Uniform clearing price ($/MWh); NaN when nothing trades."""

    @property
    def volume_mw(self) -> float:
        """Total traded quantity."""
        return float(self.sold_mw.sum())


def _levels(prices: list[float], quantities: list[float], descending: bool) -> tuple[list, ...]:
    """Sorted unique price levels, their total quantity, and each order's level index."""
    levels = sorted(set(prices), reverse=descending)
    where = {p: k for k, p in enumerate(levels)}
    totals = [0.0] * len(levels)
    index = [where[p] for p in prices]
    for k, q in zip(index, quantities, strict=True):
        totals[k] += q
    return levels, totals, index


def clear_double_auction(
    offer_mw: np.ndarray,
    offer_price: np.ndarray,
    bid_mw: np.ndarray,
    bid_price: np.ndarray,
) -> Clearing:
    """Clear sell offers against buy bids with the uniform-price rule of the module docstring.

    Quantities must be >= 0 and prices finite; orders of at most ``QUANTITY_TOL_MW`` do not take
    part. Returns the quantity sold per offer, bought per bid, and the clearing price. Written
    for a handful of orders (plain Python loops; a few microseconds for three microgrids).
    """
    oq, op, bq, bp = (
        np.asarray(v, dtype=float).reshape(-1).tolist()
        for v in (offer_mw, offer_price, bid_mw, bid_price)
    )
    if len(oq) != len(op) or len(bq) != len(bp):
        raise ValueError("each order needs one quantity and one price")
    if min(oq, default=0.0) < 0.0 or min(bq, default=0.0) < 0.0:
        raise ValueError("order quantities must be >= 0")
    if not all(math.isfinite(p) for p in op + bp):
        raise ValueError("order prices must be finite")
    sold = [0.0] * len(oq)
    bought = [0.0] * len(bq)
    sellers = [k for k, q in enumerate(oq) if q > QUANTITY_TOL_MW]
    buyers = [k for k, q in enumerate(bq) if q > QUANTITY_TOL_MW]
    if not sellers or not buyers:
        return Clearing(np.array(sold), np.array(bought), math.nan)

    o_lvl, o_qty, o_idx = _levels([op[k] for k in sellers], [oq[k] for k in sellers], False)
    b_lvl, b_qty, b_idx = _levels([bp[k] for k in buyers], [bq[k] for k in buyers], True)
    o_left, b_left = list(o_qty), list(b_qty)
    i = j = 0
    o_marg = b_marg = math.nan
    while i < len(o_lvl) and j < len(b_lvl) and o_lvl[i] <= b_lvl[j]:
        q = min(o_left[i], b_left[j])
        o_left[i] -= q
        b_left[j] -= q
        o_marg, b_marg = o_lvl[i], b_lvl[j]
        if o_left[i] <= QUANTITY_TOL_MW:
            o_left[i] = 0.0
            i += 1
        if b_left[j] <= QUANTITY_TOL_MW:
            b_left[j] = 0.0
            j += 1
    if math.isnan(o_marg):
        return Clearing(np.array(sold), np.array(bought), math.nan)
    o_next = o_lvl[i] if i < len(o_lvl) else math.inf
    b_next = b_lvl[j] if j < len(b_lvl) else -math.inf
    price = 0.5 * (max(o_marg, b_next) + min(b_marg, o_next))

    # Each level trades (total - left); its orders share that pro rata.
    for k, lvl in zip(sellers, o_idx, strict=True):
        sold[k] = oq[k] * (o_qty[lvl] - o_left[lvl]) / o_qty[lvl]
    for k, lvl in zip(buyers, b_idx, strict=True):
        bought[k] = bq[k] * (b_qty[lvl] - b_left[lvl]) / b_qty[lvl]
    # Pro-rata shares are exact up to rounding; make the two sides balance to the last bit.
    total_sold, total_bought = sum(sold), sum(bought)
    total = min(total_sold, total_bought)
    return Clearing(
        np.array(sold) * (total / total_sold), np.array(bought) * (total / total_bought), price
    )


_DIESELS = [DIESEL[mg] for mg in MICROGRIDS]


def p2p_orders(
    exchange: np.ndarray, dg_p: np.ndarray, import_price: float, export_price: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Orders of each microgrid from its exchange at the point of connection (import > 0).

    * Seller (exchange < 0) offers its surplus ``-exchange`` at its diesel's marginal cost if the
      diesel runs, clipped to ``[export_price, import_price]``, else at ``export_price`` (what
      the DSO would pay it): it never asks less than the DSO pays nor more than buyers bid.
    * Buyer (exchange > 0) bids for its deficit ``exchange`` at ``import_price`` (what it would
      pay the DSO for the same energy).

    Returns ``(offer_mw, offer_price, bid_mw, bid_price)``, one entry per microgrid (0 MW for a
    microgrid on the other side). When ``export_price > import_price`` (negative prices) every
    offer is above every bid and nothing trades.
    """
    offer_mw = np.maximum(-exchange, 0.0)
    bid_mw = np.maximum(exchange, 0.0)
    offer_price = np.empty(len(exchange))
    for i, p in enumerate(np.asarray(dg_p, dtype=float).tolist()):
        if p > DG_OFF_MW:  # a running diesel asks its marginal cost, within the DSO's prices
            mc = _DIESELS[i].marginal_cost(p)
            offer_price[i] = max(export_price, min(mc, import_price))
        else:
            offer_price[i] = export_price
    bid_price = np.full(len(exchange), float(import_price))
    return offer_mw, offer_price, bid_mw, bid_price
