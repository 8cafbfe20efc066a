"""The webhook's HTTP server, hardened for the open internet (issue 18).

tornado's HTTPServer with what a public port needs and tornado does not do by itself:

- timeouts: headers (and an idle keep-alive connection) `HEADER_TIMEOUT`, a body `BODY_TIMEOUT`;
- a cap on open connections, below the open-file limit (raised to its hard limit at start): at
  the cap, or when the process runs out of descriptors anyway, the oldest connection that is not
  serving an authenticated request is closed to make room, so stalled connections cannot keep
  Telegram (or the health probe) out;
- an accept loop that backs off when accept() fails for lack of descriptors or memory, instead of
  spinning on the error (tornado's own loop logs a traceback per attempt);
- refusals counted and logged at most once a minute per kind, with the count; tornado's own lines
  about malformed requests counted the same way, and no line longer than `LOG_TEXT_MAX`.

What each request is worth is decided by the handlers (bot.webhook): they mark a connection busy
once its request proved to be Telegram's.
"""
from __future__ import annotations

import errno
import ipaddress
import logging
import resource
import socket
import time
from typing import Any, Callable, Iterable

from tornado.http1connection import HTTP1ServerConnection
from tornado.httpserver import HTTPServer, _HTTPRequestContext
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream

log = logging.getLogger("bot.webhook")

HEADER_TIMEOUT = 15.0       # seconds for a request's headers, and for an idle keep-alive connection
BODY_TIMEOUT = 10.0         # seconds for a request's body
DESCRIPTOR_RESERVE = 256    # descriptors kept for the database, the Bot API client and the rest
MAX_CONNECTIONS = 4096      # open connections at most, whatever the open-file limit
REFUSAL_LOG_INTERVAL = 60.0  # seconds: one log line per kind of refusal at most this often
LOG_TEXT_MAX = 200          # characters of a library's log line kept (attackers choose its text)
_OUT_OF = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_BACKOFF_FIRST, _BACKOFF_MAX = 0.05, 1.0


def raise_open_file_limit() -> int:
    """The soft open-file limit raised to the hard one (as far as it goes); the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, exc)
    return soft


def connection_cap(file_limit: int) -> int:
    return max(16, min(MAX_CONNECTIONS, file_limit - DESCRIPTOR_RESERVE))


def client_address(peer: str | None, headers: Any) -> str:
    """The client's address for the log: the peer's, or behind a proxy on this machine or a private
    network (the only way the open internet reaches a loopback or private listener) the address
    the proxy forwarded. Never text the client chose that is not an address."""
    try:
        address = ipaddress.ip_address(peer or "")
    except ValueError:
        return "?"
    if address.is_loopback or address.is_private:
        forwarded = headers.get("X-Real-Ip") or (headers.get("X-Forwarded-For") or "").split(",")[-1]
        try:
            return str(ipaddress.ip_address(forwarded.strip()[:64]))
        except ValueError:
            pass
    return str(address)


class Refusals:
    """Refused requests counted per kind; a kind's first refusal is logged at once, the later ones
    at most once per `interval` as one line with their count."""

    def __init__(self, interval: float = REFUSAL_LOG_INTERVAL, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self.clock = clock
        self.total: dict[str, int] = {}
        self._unlogged: dict[str, int] = {}
        self._logged_at: dict[str, float] = {}
        self._last_detail: dict[str, str] = {}

    def note(self, kind: str, detail: str = "") -> None:
        self.total[kind] = self.total.get(kind, 0) + 1
        self._unlogged[kind] = self._unlogged.get(kind, 0) + 1
        self._last_detail[kind] = detail[:LOG_TEXT_MAX]
        now = self.clock()
        if now - self._logged_at.get(kind, float("-inf")) >= self.interval:
            self._log(kind, now)

    def _log(self, kind: str, now: float) -> None:
        count = self._unlogged.pop(kind, 0)
        if not count:
            return
        self._logged_at[kind] = now
        detail = self._last_detail.get(kind)
        if count == 1:
            log.warning("refused a webhook request: %s%s", kind, f" ({detail})" if detail else "")
        else:
            log.warning("refused %d webhook requests since the last line: %s (the last %s)", count,
                        kind, detail or "-")

    def flush(self) -> None:
        now = self.clock()
        for kind in list(self._unlogged):
            self._log(kind, now)


class _TornadoLines(logging.Filter):
    """tornado's lines about malformed requests become counted refusals; its other lines are cut."""

    def __init__(self, refusals: Refusals):
        super().__init__()
        self.refusals = refusals

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        if message.startswith(("Malformed HTTP", "Uncaught exception in HTTP", "Cannot allocate")):
            self.refusals.note("malformed HTTP request (400)")
            return False
        if message.startswith("Timeout reading body"):
            self.refusals.note("body not sent in time (connection closed)")
            return False
        if len(message) > LOG_TEXT_MAX:
            record.msg, record.args = message[:LOG_TEXT_MAX] + "…", None
        if record.exc_info and record.name != "tornado.application":    # a bug of ours keeps its traceback
            record.exc_info = record.exc_text = None
        return True


class GuardedServer(HTTPServer):
    """HTTPServer with a connection cap (oldest idle connection evicted), timeouts and an accept
    loop that backs off. `busy(stream)`: that connection serves a request that proved genuine."""

    def initialize(self, *args: Any, max_connections: int = MAX_CONNECTIONS,
                   refusals: Refusals | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("idle_connection_timeout", HEADER_TIMEOUT)
        kwargs.setdefault("body_timeout", BODY_TIMEOUT)
        super().initialize(*args, **kwargs)
        self.max_connections = max_connections
        self.refusals = refusals or Refusals()
        self.evicted = 0
        self.starved_at = float("-inf")      # when accept() last failed for lack of descriptors
        self._order: dict[Any, None] = {}    # connections, oldest first
        self._busy: set[IOStream] = set()
        self._filter = _TornadoLines(self.refusals)
        for name in ("tornado.general", "tornado.application", "tornado.access"):
            logging.getLogger(name).addFilter(self._filter)

    # ---- connections ------------------------------------------------------------------------

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def busy(self, stream: IOStream | None, busy: bool = True) -> None:
        if stream is None:
            return
        if busy:
            self._busy.add(stream)
        else:
            self._busy.discard(stream)

    def handle_stream(self, stream: IOStream, address: tuple) -> None:
        # As HTTPServer.handle_stream, the connection also remembered in the order it came.
        context = _HTTPRequestContext(stream, address, self.protocol, self.trusted_downstream)
        conn = HTTP1ServerConnection(stream, self.conn_params, context)
        self._connections.add(conn)
        self._order[conn] = None
        conn.start_serving(self)

    def on_close(self, server_conn: object) -> None:
        super().on_close(server_conn)
        self._order.pop(server_conn, None)
        self._busy.discard(getattr(server_conn, "stream", None))

    def _evict_one(self) -> bool:
        """Close the oldest open connection not serving a genuine request; False if none."""
        for conn in self._order:
            stream = conn.stream
            if stream is None or stream.closed() or stream in self._busy:
                continue
            stream.close()       # tornado's on_close forgets the connection
            self.evicted += 1
            self.refusals.note("idle connection closed to make room for a new one", f"cap {self.max_connections}")
            return True
        return False

    def _admit(self, connection: socket.socket, address: Any) -> None:
        if len(self._connections) >= self.max_connections and not self._evict_one():
            connection.close()
            self.refusals.note("connection refused: every connection is serving an update")
            return
        self._handle_connection(connection, address)

    # ---- accepting ----------------------------------------------------------------------------

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        for sock in sockets:
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = self._accept_on(sock)

    def _accept_on(self, sock: socket.socket) -> Callable[[], None]:
        io_loop = IOLoop.current()
        state: dict[str, Any] = {"timer": None, "backoff": _BACKOFF_FIRST, "watching": True}

        def resume() -> None:
            state["timer"] = None
            if not state["watching"]:
                io_loop.add_handler(sock, ready, IOLoop.READ)
                state["watching"] = True

        def pause() -> None:
            if state["watching"]:
                io_loop.remove_handler(sock)
                state["watching"] = False
            state["timer"] = io_loop.call_later(state["backoff"], resume)
            state["backoff"] = min(state["backoff"] * 2, _BACKOFF_MAX)

        def ready(fd: Any, events: int) -> None:
            for _ in range(128):
                try:
                    connection, address = sock.accept()
                except BlockingIOError:
                    return
                except ConnectionAbortedError:
                    continue
                except OSError as exc:
                    if exc.errno not in _OUT_OF:
                        raise
                    self.starved_at = time.monotonic()
                    if self._evict_one():
                        continue
                    self.refusals.note("cannot accept a connection", exc.strerror or str(exc))
                    pause()
                    return
                state["backoff"] = _BACKOFF_FIRST
                self._admit(connection, address)

        def remove() -> None:
            if state["timer"] is not None:
                io_loop.remove_timeout(state["timer"])
                state["timer"] = None
            if state["watching"]:
                io_loop.remove_handler(sock)
                state["watching"] = False

        io_loop.add_handler(sock, ready, IOLoop.READ)
        return remove

    def starved(self, within: float = 10.0) -> bool:
        """accept() failed for lack of descriptors within the last `within` seconds."""
        return time.monotonic() - self.starved_at < within

    def detach_logging(self) -> None:
        self.refusals.flush()
        for name in ("tornado.general", "tornado.application", "tornado.access"):
            logging.getLogger(name).removeFilter(self._filter)
