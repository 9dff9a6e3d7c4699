"""Bounded HTTP: a whole exchange within a deadline, an answer within a size.

httpx bounds each network wait (``timeout``), not a request: an answer sent one byte at
a time never trips a read timeout. Here every socket operation of a request (connect,
TLS, sending, the status line, headers and body) waits at most until the deadline the
calling thread set with :func:`within`, so a request ends by that deadline whatever the
server does; :func:`read_body` reads the decoded body in chunks (a gzip bomb is measured
as it inflates) and stops at ``cap`` bytes.

The deadline is per thread: httpx's sync client does its network I/O on the calling
thread, and a token request made while sending an API request (the auth flow) runs under
the earlier of its own deadline and the API request's.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

from gscsync.errors import BadResponse

MB = 1024 * 1024
_local = threading.local()


@contextmanager
def within(seconds: float) -> Iterator[float]:
    """Network I/O on this thread ends within ``seconds`` (or the enclosing deadline, if
    earlier); yields the deadline, on ``time.monotonic``."""
    outer: float | None = getattr(_local, "deadline", None)
    deadline = time.monotonic() + seconds
    if outer is not None:
        deadline = min(deadline, outer)
    _local.deadline = deadline
    try:
        yield deadline
    finally:
        _local.deadline = outer


def _bounded(timeout: float | None, late: type[Exception]) -> float | None:
    """``timeout`` cut to what is left before this thread's deadline."""
    deadline: float | None = getattr(_local, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise late("the request's deadline passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    """A network stream whose every wait ends by the thread's deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _Stream(self._stream.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _Stream(
            self._backend.connect_tcp(host, port, bounded, local_address, socket_options)
        )

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _Stream(self._backend.connect_unix_socket(path, bounded, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class BoundedTransport(httpx.HTTPTransport):
    """httpx's own transport (its pool, TLS and error mapping) over the bounded backend.

    Proxies configured in the environment get httpx's plain transports: through a proxy
    the body is still bounded by :func:`read_body`, each wait by httpx's timeout."""

    def __init__(self, limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_Backend(),
        )


def read_body(response: httpx.Response, deadline: float, cap: int, *, cut: bool = False) -> bytes:
    """The decoded body of a streamed ``response``, read by ``deadline`` (else
    ``httpx.ReadTimeout``) and at most ``cap`` bytes: past it, ``BadResponse``, or with
    ``cut`` (an error answer, read for its message) the first ``cap`` bytes."""
    parts: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        if size + len(chunk) > cap:
            if cut:
                parts.append(chunk[: cap - size])
                break
            raise BadResponse(f"answer larger than {cap / MB:g} MB: not read further")
        parts.append(chunk)
        size += len(chunk)
        if time.monotonic() >= deadline:
            raise httpx.ReadTimeout("the answer did not arrive in time", request=response.request)
    return b"".join(parts)
