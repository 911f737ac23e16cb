"""alpaca-py market data against the simulator: historical REST and the live streams, through their handlers."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from alpaca.data.enums import DataFeed, OptionsFeed
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.live.option import OptionDataStream
from alpaca.data.live.stock import StockDataStream
from alpaca.data.requests import (
    OptionChainRequest,
    OptionLatestQuoteRequest,
    OptionLatestTradeRequest,
    OptionSnapshotRequest,
    StockLatestQuoteRequest,
    StockSnapshotRequest,
)

from tests.sim.helpers import StreamThread, near_money_contracts, option_data_client, wait_for


def test_chain_snapshot_has_quotes_iv_and_greeks(sim_thread: Any) -> None:
    client = option_data_client(sim_thread)
    today = sim_thread.call(lambda: sim_thread.sim.clock.today())
    expiry = today + dt.timedelta(days=(4 - today.weekday()) % 7 + 7)  # a Friday weekly
    chain = client.get_option_chain(
        OptionChainRequest(underlying_symbol="SPY", expiration_date=expiry, feed=OptionsFeed.INDICATIVE)
    )
    assert len(chain) > 40
    spot = sim_thread.call(lambda: sim_thread.sim.market.spot("SPY"))
    atm = min((s for s in chain if "C" in s[9]), key=lambda s: abs(int(s[-8:]) / 1000 - spot))
    snap = chain[atm]
    assert snap.latest_quote.bid_price < snap.latest_quote.ask_price
    assert 0.05 < snap.implied_volatility < 0.6
    assert 0.35 < snap.greeks.delta < 0.65 and snap.greeks.gamma > 0 and snap.greeks.theta < 0 and snap.greeks.vega > 0


def test_chain_pages_through_every_contract_of_an_expiry(sim_thread: Any) -> None:
    base = sim_thread.urls.data_url
    import requests

    today = sim_thread.call(lambda: sim_thread.sim.clock.today())
    params: dict[str, Any] = {"expiration_date": today.isoformat(), "limit": 25}
    seen: list[str] = []
    while True:
        page = requests.get(
            f"{base}/v1beta1/options/snapshots/QQQ", params=params, headers=sim_thread.headers, timeout=10
        ).json()
        seen += list(page["snapshots"])
        if page["next_page_token"] is None:
            break
        params["page_token"] = page["next_page_token"]
    full = option_data_client(sim_thread).get_option_chain(
        OptionChainRequest(underlying_symbol="QQQ", expiration_date=today)
    )
    assert len(seen) > 25 and sorted(seen) == sorted(full)


def test_latest_quotes_trades_and_snapshots_by_symbol(sim_thread: Any) -> None:
    client = option_data_client(sim_thread)
    symbols = near_money_contracts(sim_thread, count=3)
    quotes = client.get_option_latest_quote(OptionLatestQuoteRequest(symbol_or_symbols=symbols))
    assert set(quotes) == set(symbols)
    for q in quotes.values():
        assert 0 < q.bid_price < q.ask_price and q.bid_size >= 1
        assert round(q.ask_price * 100) == pytest.approx(q.ask_price * 100)  # penny ticks
    snaps = client.get_option_snapshot(OptionSnapshotRequest(symbol_or_symbols=symbols))
    assert set(snaps) == set(symbols)
    trades = client.get_option_latest_trade(OptionLatestTradeRequest(symbol_or_symbols=symbols))
    assert all(t.price > 0 and t.size >= 1 for t in trades.values())


def test_stock_latest_quote_and_snapshot(sim_thread: Any) -> None:
    client = StockHistoricalDataClient(
        sim_thread.urls.key, sim_thread.urls.secret, url_override=sim_thread.urls.data_url
    )
    quotes = client.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols=["SPY", "QQQ"], feed=DataFeed.IEX))
    spot = sim_thread.call(lambda: sim_thread.sim.market.spot("SPY"))
    assert quotes["SPY"].bid_price <= spot <= quotes["SPY"].ask_price + 0.02
    snaps = client.get_stock_snapshot(StockSnapshotRequest(symbol_or_symbols=["QQQ"], feed=DataFeed.IEX))
    bar = snaps["QQQ"].daily_bar
    assert bar is not None and bar.high >= bar.low


def test_option_data_stream_delivers_quotes_and_trades_to_handlers(sim_thread: Any) -> None:
    symbols = near_money_contracts(sim_thread, count=4, days_out=0)
    got: dict[str, list[Any]] = {"q": [], "t": []}
    done = threading.Event()

    async def on_quote(q: Any) -> None:
        got["q"].append(q)

    async def on_trade(t: Any) -> None:
        got["t"].append(t)
        done.set()

    stream = OptionDataStream(
        sim_thread.urls.key, sim_thread.urls.secret, url_override=sim_thread.urls.options_stream_url
    )
    stream.subscribe_quotes(on_quote, *symbols)
    stream.subscribe_trades(on_trade, "*")
    runner = StreamThread(stream)
    try:
        wait_for(lambda: len(got["q"]) >= 20 and done.is_set(), timeout=15)
    finally:
        runner.stop()
    assert {q.symbol for q in got["q"]} <= set(symbols)
    q = got["q"][-1]
    now = sim_thread.call(lambda: sim_thread.sim.clock.now_ns)
    assert q.bid_price < q.ask_price and abs(q.timestamp.timestamp() - now / 1e9) < 30  # event time, not wall time
    assert got["t"][0].price > 0


def test_stock_data_stream_delivers_quotes_and_trades_to_handlers(sim_thread: Any) -> None:
    got: dict[str, list[Any]] = {"q": [], "t": []}

    async def on_quote(q: Any) -> None:
        got["q"].append(q)

    async def on_trade(t: Any) -> None:
        got["t"].append(t)

    stream = StockDataStream(
        sim_thread.urls.key, sim_thread.urls.secret, url_override=sim_thread.urls.stocks_stream_url
    )
    stream.subscribe_quotes(on_quote, "SPY")
    stream.subscribe_trades(on_trade, "SPY", "QQQ")
    runner = StreamThread(stream)
    try:
        wait_for(lambda: len(got["q"]) >= 5 and len(got["t"]) >= 5, timeout=15)
    finally:
        runner.stop()
    assert {q.symbol for q in got["q"]} == {"SPY"}
    assert {t.symbol for t in got["t"]} <= {"SPY", "QQQ"}
    assert all(q.bid_price < q.ask_price for q in got["q"])
