"""An Alpaca-compatible exchange simulator: REST, market-data and trade_updates streams on loopback.

A separate world: it may use ``greeks/`` to price its market, nothing else from the engine; the
engine reaches it only over the wire. Start it with ``engine.sim.server.Simulator`` (Python) or
``options-engine sim`` (CLI). See docs/simulator.md.
"""
