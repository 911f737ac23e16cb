"""Fixtures: scripted Alpaca websocket servers on loopback (see ``fake_alpaca.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fake_alpaca import DataScript, FakeDataServer, FakeTradingServer
from websockets.asyncio.server import serve


@pytest.fixture
async def data_server() -> AsyncIterator[FakeDataServer]:
    server = FakeDataServer(DataScript())
    async with serve(server.handler, "127.0.0.1", 0) as ws_server:
        port = next(iter(ws_server.sockets)).getsockname()[1]
        server.url = f"ws://127.0.0.1:{port}/v1beta1/indicative"
        yield server


@pytest.fixture
async def trading_server() -> AsyncIterator[FakeTradingServer]:
    server = FakeTradingServer()
    async with serve(server.handler, "127.0.0.1", 0) as ws_server:
        port = next(iter(ws_server.sockets)).getsockname()[1]
        server.url = f"ws://127.0.0.1:{port}/stream"
        yield server
