"""Sans-I/O protocol of the stock stream (``/v2/{iex|sip|test}``, docs/alpaca.md §5).

Same handshake and framing as the options stream; the engine asks for msgpack like alpaca-py does.
Stock quotes carry ``c`` as an array and a tape ``z``, which the scanner skips. The engine streams
the underlyings' quotes (and optionally trades) to drive spot for the option books.
"""

from __future__ import annotations

from engine.alpaca.feeds.marketdata import MarketDataProtocol

HANDSHAKE_HEADERS = {"Content-Type": "application/msgpack"}


class StockProtocol(MarketDataProtocol):
    """Stock stream: the shared market-data protocol (no extra subscription rules)."""
