"""Alpaca's error shape: HTTP status plus a JSON body ``{"code": 8 digits, "message": ...}``.

The first three digits of ``code`` match the HTTP status (observed on Alpaca; see
docs/alpaca.md §8.6); extra context keys (``buying_power``, ``cost_basis``...) go beside them.
"""

from __future__ import annotations

from typing import Any

# Codes seen on Alpaca (spec and issue reports).
DECODE_FAILED = 40010000
INVALID_PARAM = 40010001
UNAUTHORIZED = 40110000
FORBIDDEN = 40310000
CANNOT_EXERCISE_SHORT = 40310001
NOT_FOUND = 40410000
METHOD_NOT_ALLOWED = 40510000
UNPROCESSABLE = 42210000
RATE_LIMITED = 42910000
INTERNAL = 50010000
GATEWAY_TIMEOUT = 50410000


class AlpacaError(Exception):
    """A request Alpaca would refuse: becomes ``status`` with ``{"code", "message", **extra}``."""

    def __init__(self, status: int, code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {**self.extra, "code": self.code, "message": self.message}


def invalid(message: str, **extra: Any) -> AlpacaError:
    """422: the request is well formed but not acceptable."""
    return AlpacaError(422, INVALID_PARAM, message, **extra)


def unprocessable(message: str, **extra: Any) -> AlpacaError:
    """422 with Alpaca's 42210000 code (invalid symbol, price increments, not cancelable)."""
    return AlpacaError(422, UNPROCESSABLE, message, **extra)


def forbidden(message: str, **extra: Any) -> AlpacaError:
    """403: buying power, shares, permissions."""
    return AlpacaError(403, FORBIDDEN, message, **extra)


def not_found(message: str) -> AlpacaError:
    return AlpacaError(404, NOT_FOUND, message)
