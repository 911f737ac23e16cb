"""Sans-I/O protocol of the options stream (``/v1beta1/{indicative|opra}``, docs/alpaca.md §3-4).

msgpack only (without the msgpack Content-Type the server answers 412); channels ``quotes`` and
``trades``; ``"*"`` is not allowed for quotes (413); the quote cap is the plan's (200 indicative,
1000 opra; 405 above it, old set kept). Everything else is the shared market-data protocol.
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.alpaca.feeds.marketdata import MarketDataProtocol

PLAN_QUOTE_CAPS = {"indicative": 200, "opra": 1000}
HANDSHAKE_HEADERS = {"Content-Type": "application/msgpack"}


class OptionProtocol(MarketDataProtocol):
    """Options stream: the market-data protocol with the option stream's subscription rules."""

    def set_subscription(self, quotes: Iterable[str], trades: Iterable[str] = ()) -> tuple[int, int]:
        quotes = list(quotes)
        if "*" in quotes:
            raise ValueError("a wildcard subscription is not allowed for option quotes (server error 413)")
        return super().set_subscription(quotes, trades)
