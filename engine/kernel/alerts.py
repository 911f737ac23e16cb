"""Alerts: operator-facing facts (config rejected, command rejected, reconciliation discrepancy...).

An :class:`Alert` is a plain value; engine/service/publish.py sends it to ``<prefix>:alerts`` and the alerts stream,
and the app logs it. ``code`` is a stable snake_case name consumers can switch on (see docs/redis.md).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

import msgspec

Severity = Literal["info", "warning", "error", "critical"]


class Alert(msgspec.Struct, frozen=True):
    """One alert; ``alert_id`` is the consumer's dedupe key."""

    code: str
    severity: Severity
    message: str
    details: dict[str, Any] = {}
    ts_ns: int = 0
    alert_id: str = ""

    def __post_init__(self) -> None:
        # Frozen structs cannot assign; fill defaults through the struct's setattr escape hatch.
        if not self.ts_ns:
            msgspec.structs.force_setattr(self, "ts_ns", time.time_ns())
        if not self.alert_id:
            msgspec.structs.force_setattr(self, "alert_id", uuid.uuid4().hex)
