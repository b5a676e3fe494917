"""Coordination protocols between the DSO and the microgrids (vertical) and among microgrids
(horizontal). They change what agents observe and how each hour's energy is settled.

Notation per microgrid i and hour h: ``x_i`` exchange at its point of connection (MW, import
> 0, measured by the power flow), ``LMP_h`` the day-ahead price, ``k`` = ``export_discount``.
Without protocols the exchange costs ``x_i * p`` with ``p = LMP_h`` on import and ``k * LMP_h``
on export (one-hour steps, so MW = MWh).

Vertical (``vertical_protocol``)
    ``price_signal``: after every power flow the DSO publishes the price of the next hour,
    ``dso_price_h = LMP_h + congestion_price * max(0, L - congestion_threshold)``, where ``L`` is
    the maximum loading of the DSO's lines (fraction of their rating) in the last converged power
    flow (the reset power flow for hour 0). Agents observe the published price of the hour they
    act in, and the exchange is settled at ``dso_price_h`` instead of ``LMP_h`` (export at
    ``k * dso_price_h``).

    ``setpoint``: at reset the DSO sends each microgrid a flat target exchange for the day,
    ``t_i = mean_h(load_i,h - pv_i,h - wind_i,h)`` (its forecast net load without battery and
    diesel, perfect day-ahead forecast), i.e. it asks every microgrid to absorb its own daily
    variability (peak shaving of the feeder). The exchange is still settled at the LMP, plus
    ``setpoint_penalty_price * |x_i - t_i|``.

Horizontal (``horizontal_protocol``)
    ``p2p_trading``: after the power flow, exporters offer their surplus and importers bid for
    their deficit (:func:`tune_grid.env.p2p.p2p_orders`), cleared by the uniform-price double
    auction :func:`tune_grid.env.p2p.clear_double_auction`. A seller of ``s_i`` and buyer of
    ``b_i`` settle ``x_i + s_i - b_i`` with the DSO (at the import/export price above) and pay
    ``price * (b_i - s_i)`` to their peers; payments sum to zero.

    ``consensus``: after every step the agents run at most ``consensus_iterations`` Metropolis
    averaging rounds over ``consensus_topology`` (:mod:`tune_grid.env.consensus`) on their local
    ``(exchange, soc)``; each agent observes its own estimate of the averages. Consensus changes
    observations only.

Costs from protocols (``p2p_payment`` + ``setpoint_cost``) are reported as ``cost_protocol``.
See ``docs/protocols.md`` for the info keys and observation features.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from tune_grid import economics
from tune_grid.config import EnvConfig
from tune_grid.env.consensus import (
    adjacency,
    metropolis_weights,
    run_consensus,
    weight_powers,
)
from tune_grid.env.observation import PRICE_SCALE, feature_names, observation_features
from tune_grid.env.p2p import clear_double_auction, p2p_orders
from tune_grid.grid.data import HOURS_PER_DAY
from tune_grid.grid.devices import HOUR, MICROGRIDS, PV_RATING_MW, WIND_RATING_MW

_N = len(MICROGRIDS)
_NO_INFO: tuple[Any, ...] = tuple(MappingProxyType({}) for _ in MICROGRIDS)

#: Extra observation features per protocol: name -> (low, high).
PROTOCOL_FEATURES: dict[str, dict[str, tuple[float, float]]] = {
    "none": {},
    "price_signal": {"dso_price": (-2.0, 20.0), "feeder_loading": (0.0, 3.0)},
    "setpoint": {"setpoint": (-5.0, 5.0)},
    "p2p_trading": {"p2p_net": (-5.0, 5.0), "p2p_volume": (0.0, 5.0)},
    "consensus": {"consensus_exchange": (-5.0, 5.0), "consensus_soc": (0.0, 1.0)},
}


@dataclass
class Settlement:
    """Money of one hour after the protocols: exchange cost and protocol costs per agent ($)."""

    exchange_cost: np.ndarray
    extra_cost: np.ndarray
    info: list[dict[str, Any]] | tuple[Any, ...] = field(
        default_factory=lambda: [dict[str, Any]() for _ in MICROGRIDS]
    )


def congestion_adder(loading: float, congestion_price: float, threshold: float) -> float:
    """Feeder-congestion adder ($/MWh) for a max DSO line loading ``loading`` (fraction)."""
    return congestion_price * max(0.0, loading - threshold)


def flat_setpoints(net_load_forecast: np.ndarray) -> np.ndarray:
    """Flat daily exchange targets (hours x agents) from forecast net loads (hours x agents)."""
    return np.broadcast_to(net_load_forecast.mean(axis=0), net_load_forecast.shape).copy()


def energy_cost(energy_mw: np.ndarray, import_price: float, export_discount: float) -> np.ndarray:
    """Cost ($) of exchanging ``energy_mw`` with the DSO for one hour (import > 0) at
    ``import_price``: the env's settlement rule, ``economics.exchange_cost``."""
    return economics.exchange_cost(
        np.asarray(energy_mw, float), import_price, export_discount, HOUR
    )


def protocol_features(config: EnvConfig) -> dict[str, tuple[float, float]]:
    """The protocol features ``config`` appends to the observation: name -> (low, high)."""
    return {
        **PROTOCOL_FEATURES[config.vertical_protocol],
        **PROTOCOL_FEATURES[config.horizontal_protocol],
    }


def obs_feature_names(config: EnvConfig) -> tuple[str, ...]:
    """Every observation column of an env built from ``config`` (base, then protocol features),
    without building the env."""
    return feature_names(observation_features(config)) + tuple(protocol_features(config))


class Protocols:
    """The active vertical and horizontal protocols of one environment.

    The env calls :meth:`reset` after its reset power flow, :meth:`settle` after each step's
    power flow, :meth:`after_step` once the state has advanced, and :meth:`observations` to
    append ``obs_features`` to every agent's observation.
    """

    def __init__(self, config: EnvConfig, net: Any) -> None:
        self.config = config
        self.vertical = config.vertical_protocol
        self.horizontal = config.horizontal_protocol
        for name in (self.vertical, self.horizontal):
            if name not in PROTOCOL_FEATURES:
                raise ValueError(f"unknown protocol {name!r}; allowed: {list(PROTOCOL_FEATURES)}")
        features = protocol_features(config)
        self.obs_features: tuple[str, ...] = tuple(features)
        self.obs_size = len(features)
        self.obs_low = np.array([lo for lo, _ in features.values()], dtype=np.float32)
        self.obs_high = np.array([hi for _, hi in features.values()], dtype=np.float32)
        self._active = self.obs_size > 0
        self._obs = np.zeros((_N, self.obs_size))
        self._col = {name: i for i, name in enumerate(self.obs_features)}

        line_zone = net.line["zone"].to_numpy()
        self._dso_lines = np.flatnonzero(line_zone == "DSO")
        load_zone = net.load["zone"].to_numpy()
        p_nom = net.load["p_nom_mw"].to_numpy(float) * config.load_scale
        self._mg_p_nom = np.array([p_nom[load_zone == mg].sum() for mg in MICROGRIDS])
        if self.horizontal == "consensus":
            adj = adjacency(config.consensus_topology, _N)
            self._weights = metropolis_weights(adj)
            self._powers = weight_powers(self._weights, config.consensus_iterations)

        # Per-episode state.
        self._day = 0
        self._loading = 0.0
        self._published = (0, float("nan"), 0.0)  # (hour, dso price, adder) for the next hour
        self._setpoints = np.zeros((HOURS_PER_DAY, _N))

    # ------------------------------------------------------------------------------ hooks
    def reset(
        self,
        *,
        day: int,
        profiles: Any,
        result: Any,
        exchange: np.ndarray,
        soc: np.ndarray,
    ) -> None:
        """Start an episode: ``result`` is the reset power flow (None if it did not converge)."""
        if not self._active:
            return
        self._day = day
        self._obs[:] = 0.0
        if self.vertical == "price_signal":
            self._loading = 0.0
            self._update_loading(result)
            self._publish(0, profiles)
        elif self.vertical == "setpoint":
            self._setpoints = flat_setpoints(self._net_load_forecast(day, profiles))
            self._obs[:, self._col["setpoint"]] = self._setpoints[0]
        if self.horizontal == "consensus":
            self._run_consensus(exchange, soc)

    @property
    def active(self) -> bool:
        """Whether any protocol is on (``none``/``none`` is the plain environment)."""
        return self._active

    def observations(self) -> np.ndarray | list[tuple[float, ...]]:
        """Protocol features of every agent (rows in MICROGRIDS order)."""
        if not self._active:
            return [()] * _N
        return self._obs

    def settle(
        self,
        *,
        price: float,
        exchange: np.ndarray,
        exchange_cost: np.ndarray,
        dg_p: np.ndarray,
        result: Any,
        hour: int,
    ) -> Settlement:
        """Settle one hour: ``exchange_cost`` is the plain LMP settlement of ``exchange``."""
        if not self._active:
            return Settlement(exchange_cost, np.zeros(_N), _NO_INFO)
        cfg = self.config
        info: list[dict[str, Any]] = [{} for _ in MICROGRIDS]
        extra = np.zeros(_N)
        import_price = price
        if self.vertical == "price_signal":
            published_hour, dso_price, adder = self._published
            if published_hour != hour:
                raise RuntimeError(f"price published for hour {published_hour}, settling {hour}")
            import_price = dso_price
            for i in range(_N):
                info[i].update(
                    dso_price=dso_price, congestion_adder=adder, feeder_loading=self._loading
                )
        elif self.vertical == "setpoint":
            target = self._setpoints[hour]
            deviation = exchange - target
            penalty = cfg.setpoint_penalty_price * np.abs(deviation) * HOUR
            extra += penalty
            for i in range(_N):
                info[i].update(
                    setpoint_mw=float(target[i]),
                    setpoint_deviation_mw=float(deviation[i]),
                    setpoint_cost=float(penalty[i]),
                )

        dso_energy = exchange
        if self.horizontal == "p2p_trading":
            export_price = import_price * cfg.export_discount
            offer_mw, offer_price, bid_mw, bid_price = p2p_orders(
                exchange, dg_p, import_price, export_price
            )
            clearing = clear_double_auction(offer_mw, offer_price, bid_mw, bid_price)
            sold, bought = clearing.sold_mw, clearing.bought_mw
            traded = clearing.volume_mw > 0.0
            payment = (bought - sold) * HOUR * clearing.price if traded else np.zeros(_N)
            extra += payment
            dso_energy = exchange + sold - bought
            self._obs[:, self._col["p2p_net"]] = bought - sold
            self._obs[:, self._col["p2p_volume"]] = clearing.volume_mw
            for i in range(_N):
                info[i].update(
                    p2p_sold_mw=float(sold[i]),
                    p2p_bought_mw=float(bought[i]),
                    p2p_price=clearing.price,
                    p2p_payment=float(payment[i]),
                    p2p_offer_price=float(offer_price[i]) if offer_mw[i] > 0 else float("nan"),
                    p2p_bid_price=float(bid_price[i]) if bid_mw[i] > 0 else float("nan"),
                    p2p_volume_mw=clearing.volume_mw,
                    dso_exchange_mw=float(dso_energy[i]),
                )
        if import_price != price or dso_energy is not exchange:
            exchange_cost = energy_cost(dso_energy, import_price, cfg.export_discount)
        return Settlement(exchange_cost, extra, info)

    def after_step(
        self,
        *,
        next_hour: int,
        day: int,
        profiles: Any,
        result: Any = None,
        exchange: np.ndarray | None = None,
        soc: np.ndarray | None = None,
    ) -> list[dict[str, Any]] | tuple[Any, ...]:
        """Update the protocol state for ``next_hour``; returns extra info per agent."""
        if not self._active:
            return _NO_INFO
        info: list[dict[str, Any]] = [{} for _ in MICROGRIDS]
        if self.vertical == "price_signal":
            self._update_loading(result)
            self._publish(next_hour, profiles)
            for i in range(_N):
                info[i]["dso_price_next"] = self._published[1]
        elif self.vertical == "setpoint":
            self._obs[:, self._col["setpoint"]] = self._setpoints[next_hour]
        if self.horizontal == "consensus":
            assert exchange is not None and soc is not None
            estimates, rounds, error = self._run_consensus(exchange, soc)
            for i in range(_N):
                info[i].update(
                    consensus_exchange_mw=float(estimates[i, 0]),
                    consensus_soc=float(estimates[i, 1]),
                    consensus_rounds=rounds,
                    consensus_error=float(error[i]),
                )
        return info

    # ---------------------------------------------------------------------------- helpers
    def _update_loading(self, result: Any) -> None:
        """Max DSO line loading (fraction) of a converged power flow; kept if it diverged."""
        if result is not None and getattr(result, "converged", False):
            self._loading = float(result.line_loading_percent[self._dso_lines].max()) / 100.0

    def _publish(self, hour: int, profiles: Any) -> None:
        cfg = self.config
        adder = congestion_adder(self._loading, cfg.congestion_price, cfg.congestion_threshold)
        dso_price = float(profiles.price[self._day, hour]) + adder
        self._published = (hour, dso_price, adder)
        self._obs[:, self._col["dso_price"]] = dso_price / PRICE_SCALE
        self._obs[:, self._col["feeder_loading"]] = self._loading

    def _net_load_forecast(self, day: int, profiles: Any) -> np.ndarray:
        """Forecast net load (MW, hours x agents): load - PV - wind, no battery or diesel."""
        load = np.stack([profiles.load[mg][day] for mg in MICROGRIDS], axis=1) * self._mg_p_nom
        res = PV_RATING_MW * profiles.pv[day] + WIND_RATING_MW * profiles.wind[day]
        return load - res[:, None]

    def _run_consensus(
        self, exchange: np.ndarray, soc: np.ndarray
    ) -> tuple[np.ndarray, int, np.ndarray]:
        local = np.stack([exchange, soc], axis=1)
        estimates, rounds = run_consensus(
            local, self._weights, self.config.consensus_iterations, powers=self._powers
        )
        error = np.abs(estimates - local.mean(axis=0)).max(axis=1)
        self._obs[:, self._col["consensus_exchange"]] = estimates[:, 0]
        self._obs[:, self._col["consensus_soc"]] = estimates[:, 1]
        return estimates, rounds, error
