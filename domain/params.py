"""Hot and cold configuration fields: which changes a reload may apply to a running engine.

Every config struct (``RiskLimits``, each strategy's config) names its reloadable fields in a
``HOT_FIELDS`` class variable; every other field is cold (it needs a restart). A reload computes the
difference field by field, applies the hot changes and reports the cold ones, keeping their old values.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, TypeVar

import msgspec


class HotColdConfig(Protocol):
    """A frozen msgspec struct that names its hot (reloadable) fields."""

    HOT_FIELDS: ClassVar[frozenset[str]]
    __struct_fields__: ClassVar[tuple[str, ...]]


C = TypeVar("C", bound=msgspec.Struct)


def hot_fields(config_type: type[Any]) -> frozenset[str]:
    """The hot field names of a config type (every field not listed there is cold)."""
    hot: frozenset[str] = getattr(config_type, "HOT_FIELDS", frozenset())
    return hot


def cold_fields(config_type: type[Any]) -> frozenset[str]:
    """The cold field names of a config type."""
    fields: tuple[str, ...] = config_type.__struct_fields__
    return frozenset(fields) - hot_fields(config_type)


def diff_params(old: C, new: C) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split the fields that differ between two configs into (hot changes, cold changes): name -> new value."""
    if type(old) is not type(new):
        raise TypeError(f"cannot diff {type(old).__name__} against {type(new).__name__}")
    hot = hot_fields(type(old))
    hot_changes: dict[str, Any] = {}
    cold_changes: dict[str, Any] = {}
    for name in old.__struct_fields__:
        before, after = getattr(old, name), getattr(new, name)
        if before != after:
            (hot_changes if name in hot else cold_changes)[name] = after
    return hot_changes, cold_changes


def apply_hot(old: C, new: C) -> tuple[C, dict[str, Any]]:
    """Return ``old`` with ``new``'s hot changes applied, and the cold changes that were not applied."""
    hot_changes, cold_changes = diff_params(old, new)
    return msgspec.structs.replace(old, **hot_changes), cold_changes


def check_hot_fields(config_type: type[Any]) -> None:
    """Raise if ``HOT_FIELDS`` names a field the type does not have (a typo would silently make it cold)."""
    fields: tuple[str, ...] = config_type.__struct_fields__
    unknown = hot_fields(config_type) - set(fields)
    if unknown:
        raise TypeError(f"{config_type.__name__}.HOT_FIELDS names unknown fields: {sorted(unknown)}")
