"""Importers: real market data -> recordings in Alpaca's frame format (see docs/replay.md)."""
