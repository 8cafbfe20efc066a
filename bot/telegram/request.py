"""python-telegram-bot's HTTP layer on aiohttp instead of httpx.

Every reply, edit and nudge is one Bot API request, so the client's own cost per request is most of
the bot's cost per turn: with python-telegram-bot's default (httpx) a sendMessage to the emulator
in another process cost about 2.3 ms of CPU, through this about 1 ms (0.5 ms of it is parsing the
answer into a Message). Same contract as `HTTPXRequest`: (status, body),
TimedOut on a timeout, NetworkError on anything else; proxies from the environment
(HTTPS_PROXY ...) as httpx honours them.
"""
from __future__ import annotations

import asyncio
import urllib.parse
import urllib.request

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData
from telegram._utils.defaultvalue import DefaultValue

_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _given(value, default):
    return default if isinstance(value, DefaultValue) else value


class AiohttpRequest(BaseRequest):
    __slots__ = ("_connect", "_media_write", "_pool", "_pool_size", "_proxies", "_read", "_session", "_write")

    def __init__(self, connection_pool_size: int = 256, *, read_timeout: float | None = 5.0,
                 write_timeout: float | None = 5.0, connect_timeout: float | None = 5.0,
                 pool_timeout: float | None = 1.0, media_write_timeout: float | None = 20.0):
        self._pool_size = connection_pool_size
        self._read, self._write, self._connect = read_timeout, write_timeout, connect_timeout
        self._pool, self._media_write = pool_timeout, media_write_timeout
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str], str | None] = {}

    @property
    def read_timeout(self) -> float | None:
        return self._read

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size, limit_per_host=self._pool_size),
                # trust_env would look up ~/.netrc and the proxy variables in a thread on every request.
                headers={"User-Agent": self.USER_AGENT}, trust_env=False)
            self._proxies.clear()

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def _proxy(self, url: str) -> str | None:
        """HTTP(S)_PROXY / NO_PROXY from the environment, read once per host."""
        scheme, _, rest = url.partition("://")
        host = rest.split("/", 1)[0]
        key = (scheme, host)
        if key not in self._proxies:
            proxies = urllib.request.getproxies_environment()
            # proxy_bypass_environment is in the standard library but not in its type stubs.
            bypass = "no" in proxies and urllib.request.proxy_bypass_environment(  # type: ignore[attr-defined]
                host.split(":")[0], proxies)
            self._proxies[key] = None if bypass else proxies.get(scheme)
        return self._proxies[key]

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None,
                         read_timeout=BaseRequest.DEFAULT_NONE, write_timeout=BaseRequest.DEFAULT_NONE,
                         connect_timeout=BaseRequest.DEFAULT_NONE,
                         pool_timeout=BaseRequest.DEFAULT_NONE) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        files = request_data.multipart_data if request_data and request_data.contains_files else None
        fields = request_data.json_parameters if request_data else None
        read = _given(read_timeout, self._read)
        connect = _given(connect_timeout, self._connect)
        pool = _given(pool_timeout, self._pool)
        write = _given(write_timeout, self._media_write if files else self._write)
        data: object = None
        headers = None
        if fields and not files:
            # A dict would go through aiohttp's FormData, which makes a multipart writer (a random
            # boundary: a syscall) for every request only to urlencode it.
            data = urllib.parse.urlencode(fields).encode()
            headers = _FORM
        elif files:
            form = aiohttp.FormData()
            for name, value in (fields or {}).items():
                form.add_field(name, value)
            for name, (filename, content, mime) in files.items():
                form.add_field(name, content, filename=filename, content_type=mime)
            data = form
        # aiohttp has no write timeout: a slow upload is bounded by the read timeout after it.
        wait = None if connect is None and pool is None else (connect or 0) + (pool or 0)
        timeout = aiohttp.ClientTimeout(total=None, connect=wait, sock_connect=connect,
                                        sock_read=None if read is None else read + (write or 0))
        try:
            async with self._session.request(method, url, data=data, headers=headers, timeout=timeout,
                                             proxy=self._proxy(url)) as response:
                return response.status, await response.read()
        except asyncio.TimeoutError as exc:
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{exc.__class__.__name__}: {exc}") from exc
