"""The operator's cockpit: a live dashboard, what-if grid and controls on the metrics server (docs/dashboard.md)."""

from engine.service.cockpit.server import Cockpit

__all__ = ["Cockpit"]
