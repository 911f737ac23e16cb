"""Record and replay: the recording format, the replay driver, the in-process exchange, importers.

See docs/replay.md. ``engine/service/record.py`` writes recordings from a running engine; ``driver.Replay``
feeds one through the engine's own protocols, book, strategies, gate and router.
"""
