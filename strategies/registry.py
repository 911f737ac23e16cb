"""Strategy kinds by name, discovered from the modules of the ``strategies`` package.

A strategy is one module of this package defining a :class:`~strategies.base.Strategy` subclass that sets
``KIND`` (its ``[strategies.<kind>]`` table in engine.toml) and ``CONFIG_TYPE`` (that table's config struct).
Nothing else names it: :func:`strategy_types` imports every module of the package (``pkgutil``) and collects
those classes, and the engine config (``engine.service.config``) validates ``[strategies.*]`` against them.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Mapping
from types import MappingProxyType, ModuleType
from typing import Any

import msgspec

import strategies
from strategies.base import Strategy, StrategyConfig


def kinds_in(module: ModuleType) -> dict[str, type[Strategy[Any]]]:
    """The strategy classes ``module`` itself defines (``KIND`` set), by kind."""
    out: dict[str, type[Strategy[Any]]] = {}
    for obj in vars(module).values():
        if (isinstance(obj, type) and issubclass(obj, Strategy) and obj.KIND
                and obj.__module__ == module.__name__):
            out[obj.KIND] = obj
    return out


def discover(package: ModuleType) -> dict[str, type[Strategy[Any]]]:
    """Every strategy class in the modules of ``package``, by kind, sorted by kind; a kind defined twice raises."""
    found: dict[str, type[Strategy[Any]]] = {}
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        for kind, cls in kinds_in(importlib.import_module(info.name)).items():
            other = found.setdefault(kind, cls)
            if other is not cls:
                raise TypeError(f"strategy kind {kind!r} is defined by both {other.__module__}.{other.__name__} "
                                f"and {cls.__module__}.{cls.__name__}")
    return dict(sorted(found.items()))


@functools.cache
def strategy_types() -> Mapping[str, type[Strategy[Any]]]:
    """The strategies of this package by kind (discovered once; ``strategy_types.cache_clear()`` looks again)."""
    return MappingProxyType(discover(strategies))


def config_types() -> dict[str, type[StrategyConfig]]:
    """Each kind's config struct: the ``[strategies.<kind>]`` table decodes into it."""
    return {kind: cls.CONFIG_TYPE for kind, cls in strategy_types().items()}


def strategy_type(kind: str) -> type[Strategy[Any]]:
    """The strategy class of ``kind``; an unknown kind raises ``ValueError`` naming the known ones."""
    types = strategy_types()
    try:
        return types[kind]
    except KeyError:
        raise ValueError(f"unknown strategy kind {kind!r} (known: {', '.join(types)})") from None


def build_strategy(name: str, config: StrategyConfig | Mapping[str, Any] | None = None,
                   strategy_id: str | None = None) -> Strategy[Any]:
    """The actor for ``[strategies.<name>]`` from its config struct or raw table (validated; bad input raises
    ``msgspec.ValidationError`` naming the field)."""
    cls = strategy_type(name)
    if config is None:
        cfg: StrategyConfig = cls.CONFIG_TYPE()
    elif isinstance(config, StrategyConfig):
        if not isinstance(config, cls.CONFIG_TYPE):
            raise TypeError(f"{name} needs a {cls.CONFIG_TYPE.__name__}, got {type(config).__name__}")
        cfg = config
    else:
        cfg = msgspec.convert(dict(config), cls.CONFIG_TYPE)
    return cls(strategy_id or name, cfg)
