"""The dashboard's controls: pause, resume, flatten and halt, only with the token, a CSRF token and a confirmation.

An action takes three requests, each carrying the token in a header (``X-Engine-Token: <token>``, or
``Authorization: Bearer <token>``, or HTTP Basic with the token as the password):

1. ``GET /control/csrf`` -> ``{"csrf": ...}``: a random CSRF token (single page lifetime, one hour at most).
2. ``POST /control/<action>`` with ``X-CSRF-Token`` -> ``{"confirm": id, "expires_s": 30}``: nothing happens yet.
3. ``POST /control/<action>`` with ``X-CSRF-Token`` and the body ``{"confirm": id}`` -> the action runs.

A browser on another site can neither read the CSRF token (no CORS headers are ever sent) nor send the custom
headers without a preflight the server refuses, and a request whose ``Origin`` or ``Sec-Fetch-Site`` says it came
from another site is refused outright. With no token configured the controls are off (read-only, 403). Tokens
are compared in constant time and never logged. The HTTP side is ``engine/service/cockpit/server.py``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from engine.service.secrets import Secret

ACTIONS = ("pause", "resume", "flatten", "halt")
CONFIRM_TTL_S = 30.0
CSRF_TTL_S = 3600.0
MAX_PENDING = 64
"""CSRF tokens and confirmations kept at most (the oldest go first)."""


def presented_token(headers: Mapping[str, str]) -> str | None:
    """The token a request carries: ``X-Engine-Token``, ``Authorization: Bearer``, or Basic's password."""
    direct = headers.get("X-Engine-Token")
    if direct:
        return direct
    auth = headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    if scheme.lower() == "basic" and value:
        try:
            return base64.b64decode(value.strip(), validate=True).decode().partition(":")[2] or None
        except (binascii.Error, UnicodeDecodeError):
            return None
    return None


def cross_site(headers: Mapping[str, str], host: str) -> bool:
    """True when the browser says the request came from another site (``Sec-Fetch-Site``, ``Origin``)."""
    if headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return True
    origin = headers.get("Origin")
    return origin is not None and origin.split("://", 1)[-1] != host


class Control:
    """Token, CSRF tokens and pending confirmations; runs the engine's actions (see the module docstring)."""

    def __init__(self, token: Secret | None, now: Callable[[], float] = time.monotonic) -> None:
        self._token = token
        self._now = now
        self._csrf: dict[str, float] = {}
        self._pending: dict[str, tuple[str, float]] = {}

    @property
    def enabled(self) -> bool:
        """False when no token is configured: the dashboard is read-only."""
        return bool(self._token)

    def token_ok(self, presented: str | None) -> bool:
        """The presented token is the configured one (constant-time); always False when none is configured."""
        if not self._token or not presented:
            return False
        return hmac.compare_digest(presented.encode(), self._token.reveal().encode())

    def issue_csrf(self) -> str:
        """A new CSRF token, valid ``CSRF_TTL_S``."""
        value = secrets.token_urlsafe(24)
        self._csrf[value] = self._now() + CSRF_TTL_S
        _trim(self._csrf)
        return value

    def csrf_ok(self, value: str | None) -> bool:
        """A CSRF token this server issued and that has not expired."""
        expires = self._csrf.get(value or "")
        return expires is not None and self._now() < expires

    def request(self, action: str) -> str:
        """Ask for ``action``: the confirmation id the second POST must carry (valid ``CONFIRM_TTL_S``, once)."""
        cid = secrets.token_urlsafe(12)
        self._pending[cid] = (action, self._now() + CONFIRM_TTL_S)
        _trim(self._pending)
        return cid

    def confirm(self, action: str, cid: str) -> bool:
        """Spend the confirmation ``cid``: True when it was issued for ``action`` and has not expired."""
        entry = self._pending.pop(cid, None)
        return entry is not None and entry[0] == action and self._now() < entry[1]


def _trim(d: dict[str, Any]) -> None:
    while len(d) > MAX_PENDING:
        del d[next(iter(d))]
