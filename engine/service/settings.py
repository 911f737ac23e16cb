"""The kernel's settings from ``engine.toml``: live, sim and replay build their kernel from this one function."""

from __future__ import annotations

from engine.kernel.kernel import KernelSettings
from engine.service.config import EngineConfig


def kernel_settings(cfg: EngineConfig) -> KernelSettings:
    """The kernel's settings from ``engine.toml`` (live, sim and replay build their kernel from this)."""
    sim = cfg.engine.mode == "sim"
    return KernelSettings(
        strategies=cfg.strategy_configs(), risk=cfg.risk, orders=cfg.orders,
        client_order_prefix=cfg.engine.client_order_prefix, surface=cfg.surface,
        iv_rank_min_days=cfg.vol_history.min_days,
        risk_free_rate=cfg.sim.risk_free_rate if sim else 0.04,
        dividend_yields={u.symbol: u.dividend_yield for u in cfg.sim.underlyings} if sim else {},
    )
