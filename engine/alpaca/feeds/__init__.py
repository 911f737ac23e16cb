"""Alpaca websocket feeds: a sans-I/O ``protocol.py`` and an asyncio ``client.py`` per stream.

* ``options/`` and ``stocks/``: market data (shared protocol in ``marketdata.py``, compiled frame scan in
  ``scan.py``, client loop with the mute detector in ``datastream.py``; symbol ids in ``engine/kernel/symbols.py``);
* ``trading/``: ``trade_updates`` (wire structs shared with the REST client in ``trading/models.py``);
* ``connection.py``: the reconnect loop; ``backoff.py``: delays and error classification.
"""
