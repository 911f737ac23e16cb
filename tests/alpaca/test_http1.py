"""The order path's HTTP/1.1 codec without sockets: request bytes out, responses from bytes in however they are cut."""

from __future__ import annotations

import gzip

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.alpaca.http1 import Malformed, RequestHead, Response, ResponseParser

ORDER = b'{"id":"o-1","client_order_id":"oe-1","status":"accepted"}'
LENGTH = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-RateLimit-Limit: 200\r\n"
          b"Content-Length: %d\r\n\r\n%s" % (len(ORDER), ORDER))
CHUNKED = (b"HTTP/1.1 422 Unprocessable Entity\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;ext=1\r\n{\"cod\r\n1b\r\ne\":42210000,\"message\":\"no\"}\r\n0\r\nX-Trailer: t\r\n\r\n")


def feed_in_pieces(data: bytes, cuts: list[int]) -> list[Response | Malformed]:
    parser = ResponseParser()
    events = []
    last = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        event = parser.feed(data[last:cut])
        last = cut
        if event is not None:
            events.append(event)
    return events


def test_a_request_carries_the_fixed_fields_a_length_and_the_body() -> None:
    head = RequestHead("https://paper-api.alpaca.markets/", {"APCA-API-KEY-ID": "K", "APCA-API-SECRET-KEY": "S"})
    assert head.build("POST", "/v2/orders", b'{"a":1}') == (
        b"POST /v2/orders HTTP/1.1\r\nHost: paper-api.alpaca.markets\r\nAPCA-API-KEY-ID: K\r\n"
        b"APCA-API-SECRET-KEY: S\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}")
    local = RequestHead("http://127.0.0.1:8123/base", {})
    assert local.build("DELETE", "/v2/orders/o-1") == (
        b"DELETE /base/v2/orders/o-1 HTTP/1.1\r\nHost: 127.0.0.1:8123\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(ValueError):
        RequestHead("http://h", {"X": "a\r\nInjected: 1"})


@given(st.lists(st.integers(0, len(LENGTH)), max_size=12))
def test_a_content_length_response_is_the_same_however_it_is_cut(cuts: list[int]) -> None:
    (event,) = feed_in_pieces(LENGTH, cuts)
    assert event == Response(200, {"content-type": "application/json", "x-ratelimit-limit": "200",
                                   "content-length": str(len(ORDER))}, ORDER, True)


@given(st.lists(st.integers(0, len(CHUNKED)), max_size=12))
def test_a_chunked_response_is_the_same_however_it_is_cut(cuts: list[int]) -> None:
    (event,) = feed_in_pieces(CHUNKED, cuts)
    assert isinstance(event, Response)
    assert (event.status, event.body, event.keep_alive) == (422, b'{"code":42210000,"message":"no"}', True)


def test_no_response_until_the_last_byte() -> None:
    parser = ResponseParser()
    assert parser.feed(LENGTH[:-1]) is None
    assert parser.started
    assert isinstance(parser.feed(LENGTH[-1:]), Response)


def test_an_empty_204_an_interim_100_and_connection_close() -> None:
    parser = ResponseParser()
    event = parser.feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
    assert event == Response(204, {"connection": "close"}, b"", False)
    old = ResponseParser().feed(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    assert isinstance(old, Response) and not old.keep_alive  # HTTP/1.0 closes unless asked not to


def test_a_body_that_ends_with_the_close_is_complete_only_at_eof() -> None:
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 500 Internal Server Error\r\n\r\n{\"code\":") is None
    assert parser.feed(b"50000000}") is None
    assert parser.eof() == Response(500, {}, b'{"code":50000000}', False)


def test_a_close_before_the_end_is_malformed_not_a_response() -> None:
    parser = ResponseParser()
    assert parser.eof() == Malformed("connection closed before any response")
    cut = ResponseParser()
    assert cut.feed(LENGTH[:40]) is None
    assert isinstance(cut.eof(), Malformed)
    chunk = ResponseParser()
    assert chunk.feed(CHUNKED[:-9]) is None
    assert isinstance(chunk.eof(), Malformed)


@pytest.mark.parametrize("data", [
    b"SPDY/3 200 OK\r\n\r\n",
    b"HTTP/1.1 2x0 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
])
def test_what_is_not_http_is_malformed(data: bytes) -> None:
    assert isinstance(ResponseParser().feed(data), Malformed)


def test_bytes_after_the_response_make_the_connection_unfit() -> None:
    parser = ResponseParser()
    event = parser.feed(LENGTH + b"HTTP/1.1 200 OK\r\n")
    assert isinstance(event, Response) and event.body == ORDER and not event.keep_alive
    assert isinstance(parser.feed(b"more"), Malformed)


def test_a_gzip_body_is_decoded() -> None:
    body = gzip.compress(ORDER)
    event = ResponseParser().feed(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
                                  % (len(body), body))
    assert isinstance(event, Response) and event.body == ORDER
