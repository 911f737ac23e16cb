"""Gauges read from the running engine at scrape time: trading state, feeds, Greeks against limits, P&L.

Nothing here runs on the hot path: each gauge's function reads the kernel when ``/metrics`` is scraped
(every 15 s or so), so a value is as fresh as the scrape. Before the kernel exists the kernel's gauges
read NaN (Prometheus shows no value) and the labelled ones are empty. The dashboard
(``deploy/grafana/options-engine.json``) and the alert rules (``deploy/prometheus/alerts.yml``) use
these names; ``tests/service/test_deploy_monitoring.py`` checks that every name they use is exported.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from domain.views import PortfolioGreeks
from risk.limits import GreekLimits

if TYPE_CHECKING:
    from engine.kernel.kernel import TradingKernel
    from engine.service.app import Engine
    from engine.service.metrics import Metrics

NS = "options_engine"


def greek_values(g: PortfolioGreeks) -> dict[str, float]:
    """The four Greeks by the ``greek`` label the dashboard and alerts use."""
    return {
        "delta_shares": g.delta_shares,
        "gamma_shares_per_usd": g.gamma_shares_per_usd,
        "vega_usd_per_vol_pt": g.vega_usd_per_vol_pt,
        "theta_usd_per_day": g.theta_usd_per_day,
    }


def greek_limit_values(lim: GreekLimits) -> dict[str, float]:
    """The caps by the same ``greek`` label (theta's is the most negative theta allowed, as a positive number)."""
    return {
        "delta_shares": lim.max_abs_delta_shares,
        "gamma_shares_per_usd": lim.max_abs_gamma_shares_per_usd,
        "vega_usd_per_vol_pt": lim.max_abs_vega_usd_per_vol_pt,
        "theta_usd_per_day": lim.max_theta_burn_usd_per_day,
    }


def register_engine_gauges(metrics: Metrics, engine: Engine) -> None:
    """Register the scrape-time gauges over ``engine`` (its kernel may not exist yet)."""

    def kernel_value(read: Callable[[TradingKernel], float]) -> Callable[[], float]:
        def value() -> float:
            kernel = engine.kernel
            return math.nan if kernel is None else read(kernel)

        return value

    def kernel_values(read: Callable[[TradingKernel], dict[str, float]]) -> Callable[[], dict[str, float]]:
        def values() -> dict[str, float]:
            kernel = engine.kernel
            return {} if kernel is None else read(kernel)

        return values

    metrics.gauge(
        f"{NS}_market_open",
        "1 while the market calendar says the session is open.",
        lambda: float(engine._market_open()),
    )
    metrics.gauge(
        f"{NS}_trading_state",
        "Trading state: 0 active, 1 reduce-only, 2 halted.",
        kernel_value(lambda k: float(int(k.core.breakers.state))),
    )
    metrics.labelled_gauge(
        f"{NS}_feed_connected",
        "1 while the feed is connected and authenticated.",
        "feed",
        lambda: feed_connected(engine),
    )
    metrics.labelled_gauge(
        f"{NS}_feed_message_age_seconds",
        "Seconds since the quote feed's last data frame (reset while the market is closed).",
        "feed",
        lambda: feed_message_age_s(engine),
    )
    metrics.labelled_gauge(
        f"{NS}_portfolio_greek",
        "Total portfolio Greeks in trader units.",
        "greek",
        kernel_values(lambda k: greek_values(k.portfolio.greeks())),
    )
    metrics.labelled_gauge(
        f"{NS}_portfolio_greek_limit",
        "The gate's caps on the total Greeks (absolute values).",
        "greek",
        kernel_values(lambda k: greek_limit_values(k.core.gate.limits.total)),
    )
    metrics.labelled_gauge(
        f"{NS}_underlying_delta_shares",
        "Portfolio delta per underlying, in shares.",
        "underlying",
        kernel_values(lambda k: {u: k.portfolio.greeks(u).delta_shares for u in k.market.books}),
    )
    metrics.gauge(
        f"{NS}_underlying_delta_limit_shares",
        "The gate's cap on |delta| per underlying, in shares.",
        kernel_value(lambda k: k.core.gate.limits.per_underlying.max_abs_delta_shares),
    )
    metrics.gauge(
        f"{NS}_daily_pnl_usd",
        "The day's P&L (realized + unrealized at mid), as the breakers see it.",
        kernel_value(lambda k: k.portfolio.daily_pnl_usd()),
    )
    metrics.gauge(
        f"{NS}_daily_loss_limit_usd",
        "The daily-loss breaker's threshold (a positive number).",
        kernel_value(lambda k: k.core.breakers.limits.max_daily_loss_usd),
    )
    metrics.labelled_gauge(
        f"{NS}_strategy_fills_total",
        "Fills booked, by strategy.",
        "strategy",
        kernel_values(
            lambda k: {a.strategy_id: float(k.portfolio.strategy_summary(a.strategy_id).fills) for a in k.actors}
        ),
        kind="counter",
    )
    metrics.labelled_gauge(
        f"{NS}_strategy_pnl_usd",
        "P&L at mid of the strategy's structures.",
        "strategy",
        kernel_values(lambda k: {a.strategy_id: k.portfolio.strategy_summary(a.strategy_id).pnl_usd for a in k.actors}),
    )


def feed_connected(engine: Engine) -> dict[str, float]:
    """1.0 or 0.0 per feed the engine has opened."""
    return {
        f.feed: float(f.connected.is_set())
        for f in (engine.option_feed, engine.stock_feed, engine.trading_feed)
        if f is not None
    }


def feed_message_age_s(engine: Engine) -> dict[str, float]:
    """Seconds since each quote feed's last data frame (feeds without one yet are left out)."""
    now = time.monotonic()
    return {
        f.feed: now - f.last_data_mono
        for f in (engine.option_feed, engine.stock_feed)
        if f is not None and f.last_data_mono > 0
    }
