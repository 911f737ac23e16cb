"""HTTP/1.1 for the order write path, without I/O: request bytes out, one response parsed from bytes in.

``RequestHead`` builds a request (the fixed header lines are encoded once); ``ResponseParser`` takes the
bytes of one response as they arrive and returns a :class:`Response` when it is complete, or a
:class:`Malformed` event, never raising at the caller. One request is in flight per connection (no
pipelining): bytes after a complete response make the connection unfit for another request.

RFC 9112 clauses are cited beside the lines they justify.
"""

from __future__ import annotations

import enum
import zlib
from typing import NamedTuple
from urllib.parse import urlsplit

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 8 * 1024 * 1024


class Response(NamedTuple):
    """A complete response: status, header fields (names lower-case) and the decoded body."""

    status: int
    headers: dict[str, str]
    body: bytes
    keep_alive: bool
    """The connection may carry the next request."""


class Malformed(NamedTuple):
    """The bytes received are not a response this parser accepts (the connection must be closed)."""

    reason: str


class Origin(NamedTuple):
    """Where requests go: scheme, host and port of a base URL."""

    tls: bool
    host: str
    port: int

    @property
    def authority(self) -> str:
        """The ``Host`` field: the port only when it is not the scheme's default (RFC 9110 §7.2)."""
        default = 443 if self.tls else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


def origin(url: str) -> Origin:
    """The origin of ``http://`` or ``https://`` ``url``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    tls = parts.scheme == "https"
    return Origin(tls, parts.hostname, parts.port or (443 if tls else 80))


class RequestHead:
    """Request bytes for one origin; ``fields`` (the keys among them) are encoded once, here."""

    __slots__ = ("_fixed", "base_path")

    def __init__(self, url: str, fields: dict[str, str]) -> None:
        where = origin(url)
        self.base_path = urlsplit(url).path.rstrip("/")
        lines = [f"Host: {where.authority}", *(f"{k}: {v}" for k, v in fields.items())]
        for line in lines:
            if "\r" in line or "\n" in line:
                raise ValueError("a header field holds a line break")
        self._fixed = ("\r\n".join(lines) + "\r\n").encode("latin-1")

    def build(self, method: str, path: str, body: bytes = b"") -> bytes:
        """The whole request: request line, fixed fields, ``Content-Length`` and ``body``."""
        # RFC 9112 §6.3: a request has a body only when Content-Length (or chunked) says so; 0 for none.
        return b"".join((f"{method} {self.base_path}{path} HTTP/1.1\r\n".encode("latin-1"), self._fixed,
                         b"Content-Type: application/json\r\n" if body else b"",
                         b"Content-Length: %d\r\n\r\n" % len(body), body))


class _State(enum.IntEnum):
    HEAD = 0
    LENGTH = 1
    CHUNK_SIZE = 2
    CHUNK_DATA = 3
    TRAILERS = 4
    UNTIL_CLOSE = 5
    DONE = 6


class ResponseParser:
    """One response, fed as it arrives: ``feed`` returns it once complete, ``eof`` when the peer closed."""

    def __init__(self, *, head_request: bool = False) -> None:
        self._buf = bytearray()
        self._state = _State.HEAD
        self._head_request = head_request
        self._status = 0
        self._headers: dict[str, str] = {}
        self._keep_alive = True
        self._left = 0
        self._body = bytearray()

    @property
    def started(self) -> bool:
        """Some byte of the response arrived."""
        return bool(self._buf) or self._state is not _State.HEAD

    def feed(self, data: bytes) -> Response | Malformed | None:
        """Take ``data``; the response when complete, ``Malformed`` on a protocol error, else None."""
        if self._state is _State.DONE:
            return Malformed("bytes after the response") if data else None
        self._buf += data
        try:
            return self._advance()
        except _Bad as exc:
            self._state = _State.DONE
            return Malformed(str(exc))

    def eof(self) -> Response | Malformed:
        """The peer closed: the response if its end is the close (RFC 9112 §6.3 rule 8), else ``Malformed``."""
        if self._state is _State.UNTIL_CLOSE:
            self._body += self._buf
            self._buf.clear()
            self._keep_alive = False
            try:
                return self._done()
            except _Bad as exc:
                return Malformed(str(exc))
        return Malformed("connection closed before the response was complete" if self.started
                         else "connection closed before any response")

    # -- the states ------------------------------------------------------------------------------

    def _advance(self) -> Response | None:
        while True:
            state = self._state
            if state is _State.HEAD:
                if not self._head():
                    return None
            elif state is _State.LENGTH:
                if len(self._buf) < self._left:
                    return None
                self._body += self._buf[: self._left]
                del self._buf[: self._left]
                return self._done()
            elif state is _State.CHUNK_SIZE:
                if not self._chunk_size():
                    return None
            elif state is _State.CHUNK_DATA:
                if len(self._buf) < self._left + 2:
                    return None
                if self._buf[self._left : self._left + 2] != b"\r\n":
                    raise _Bad("chunk not followed by CRLF")
                self._body += self._buf[: self._left]
                del self._buf[: self._left + 2]
                self._state = _State.CHUNK_SIZE
            elif state is _State.TRAILERS:
                end = self._buf.find(b"\r\n")
                if end < 0:
                    self._check_head_size()
                    return None
                del self._buf[: end + 2]
                if end == 0:  # RFC 9112 §7.1: trailer fields end with an empty line
                    return self._done()
            elif state is _State.UNTIL_CLOSE:
                self._body += self._buf
                self._buf.clear()
                self._check_body_size()
                return None
            else:  # DONE: handled in feed
                return None

    def _head(self) -> bool:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            self._check_head_size()
            return False
        lines = bytes(self._buf[:end]).decode("latin-1").split("\r\n")
        del self._buf[: end + 4]
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not code.isdigit():
            raise _Bad(f"bad status line {lines[0][:80]!r}")
        status = int(code)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise _Bad(f"bad header line {line[:80]!r}")
            key = name.lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        if 100 <= status < 200:
            return True  # an interim response (RFC 9110 §15.2): the final one follows
        self._status, self._headers = status, headers
        connection = headers.get("connection", "").lower()
        # RFC 9112 §9.3: HTTP/1.1 persists unless "close"; HTTP/1.0 only with "keep-alive".
        self._keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
        if self._head_request or status in (204, 304):  # RFC 9112 §6.3 rule 1: no body
            self._state = _State.LENGTH
            self._left = 0
            return True
        coding = headers.get("transfer-encoding")
        if coding is not None:
            if coding.lower().rsplit(",", 1)[-1].strip() != "chunked":
                raise _Bad(f"unsupported transfer coding {coding!r}")  # RFC 9112 §6.3 rule 4
            self._state = _State.CHUNK_SIZE
            return True
        length = headers.get("content-length")
        if length is None:
            self._state = _State.UNTIL_CLOSE  # RFC 9112 §6.3 rule 8: the body ends when the server closes
            self._keep_alive = False
            return True
        if not length.isdigit():
            raise _Bad(f"bad Content-Length {length[:40]!r}")
        self._left = int(length)
        if self._left > MAX_BODY_BYTES:
            raise _Bad(f"body of {self._left} bytes is too large")
        self._state = _State.LENGTH
        return True

    def _chunk_size(self) -> bool:
        end = self._buf.find(b"\r\n")
        if end < 0:
            self._check_head_size()
            return False
        text = bytes(self._buf[:end]).split(b";", 1)[0].strip()  # RFC 9112 §7.1.1: chunk extensions ignored
        del self._buf[: end + 2]
        try:
            size = int(text, 16)
        except ValueError:
            raise _Bad(f"bad chunk size {text[:20]!r}") from None
        if size < 0:
            raise _Bad("negative chunk size")
        if size == 0:
            self._state = _State.TRAILERS
            return True
        self._left = size
        self._check_body_size(size)
        self._state = _State.CHUNK_DATA
        return True

    def _check_head_size(self) -> None:
        if len(self._buf) > MAX_HEAD_BYTES:
            raise _Bad("header section too large")

    def _check_body_size(self, more: int = 0) -> None:
        if len(self._body) + more > MAX_BODY_BYTES:
            raise _Bad("body too large")

    def _done(self) -> Response:
        if self._buf:
            self._keep_alive = False  # bytes nobody asked for: the connection is not to be trusted again
        self._state = _State.DONE
        body = bytes(self._body)
        coding = self._headers.get("content-encoding", "identity").lower()
        if coding in ("gzip", "x-gzip", "deflate"):
            try:
                body = zlib.decompress(body, 47)  # 32 + 15: a gzip or a zlib header
            except zlib.error as exc:
                raise _Bad(f"undecodable {coding} body: {exc}") from None
        elif coding != "identity":
            raise _Bad(f"unsupported content coding {coding!r}")
        return Response(self._status, self._headers, body, self._keep_alive)


class _Bad(Exception):
    """Internal: the response breaks the protocol (turned into ``Malformed``)."""
