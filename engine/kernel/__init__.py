"""The trading kernel: clock, bus, book, portfolio, order state, strategies, gate and router, driven by event
time. It talks to the outside through a market-data port and an execution port (docs/architecture.md)."""
