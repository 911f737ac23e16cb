"""Strategy kinds by name: ``[strategies.<name>]`` in engine.toml builds ``STRATEGY_TYPES[name]``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from strategies.base import Strategy, StrategyConfig
from strategies.gamma_scalper import GammaScalper
from strategies.iron_condor import IronCondor
from strategies.zero_dte import ZeroDte

STRATEGY_TYPES: dict[str, type[Strategy[Any]]] = {
    GammaScalper.KIND: GammaScalper,
    IronCondor.KIND: IronCondor,
    ZeroDte.KIND: ZeroDte,
}


def build_strategy(name: str, config: StrategyConfig | Mapping[str, Any] | None = None,
                   strategy_id: str | None = None) -> Strategy[Any]:
    """The actor for ``[strategies.<name>]`` from its config struct or raw table (validated; bad input raises
    ``msgspec.ValidationError`` naming the field)."""
    try:
        cls = STRATEGY_TYPES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; known: {sorted(STRATEGY_TYPES)}") from None
    if config is None:
        cfg: StrategyConfig = cls.CONFIG_TYPE()
    elif isinstance(config, StrategyConfig):
        if not isinstance(config, cls.CONFIG_TYPE):
            raise TypeError(f"{name} needs a {cls.CONFIG_TYPE.__name__}, got {type(config).__name__}")
        cfg = config
    else:
        cfg = msgspec.convert(dict(config), cls.CONFIG_TYPE)
    return cls(strategy_id or name, cfg)
