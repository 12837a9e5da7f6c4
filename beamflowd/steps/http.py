"""``http``: one HTTP request via a shared httpx client, with an ``Idempotency-Key`` per attempt.

Bounded: connect, read and total timeouts; the body is streamed and the request stops at the output cap; and
the addresses a host name resolves to are checked against ``http_deny_networks`` right before connecting (so a
name that resolves to a cloud metadata address is refused, whatever the URL says).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from collections.abc import Iterable, Mapping
from typing import Any

import httpcore
import httpx

from beamflowd.core.step_params import ParamError, parse_http
from beamflowd.steps.base import (
    PermanentError,
    StepContext,
    StepError,
    param_error_to_step_error,
)

#: Statuses worth retrying: the server is overloaded, throttling us, or timed out.
_RETRYABLE_4XX = (408, 429)
_BODY_IN_ERROR = 300
#: Largest response body read, in bytes (decoded): a step's whole output must fit in the 64 KiB cap anyway.
MAX_BODY_BYTES = 64 * 1024
CONNECT_TIMEOUT_S = 10.0
#: Longest silence between two reads of the response.
READ_TIMEOUT_S = 30.0
#: Longest whole request, connect to last byte (the step's own timeout may be shorter).
TOTAL_TIMEOUT_S = 60.0

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_deny_networks: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
)

# One client per process (connection pooling across all workflows), bound to the loop that created it.
_client: httpx.AsyncClient | None = None
_client_loop: asyncio.AbstractEventLoop | None = None


class DeniedAddress(Exception):
    """The host resolves into a denied network (not an httpcore error, so httpx lets it through unmapped)."""


def configure_http(*, deny_networks: Iterable[str]) -> None:
    """The node's ``http_deny_networks`` (validated by the config)."""
    global _deny_networks
    _deny_networks = tuple(ipaddress.ip_network(n, strict=False) for n in deny_networks)


def denied(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone
    candidates = [ip]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        candidates.append(ip.ipv4_mapped)
    return any(c in net for c in candidates for net in _deny_networks if c.version == net.version)


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host itself, refuses denied addresses, then connects to the checked address only."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            infos = await asyncio.wait_for(
                asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout
            )
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
        addresses = [str(info[4][0]) for info in infos]
        bad = [a for a in addresses if denied(a)]
        if bad:
            raise DeniedAddress(
                f"{host} resolves to {bad[0]}, in a network this node denies (http_deny_networks)"
            )
        last: Exception = httpcore.ConnectError(f"cannot resolve {host}")
        for address in dict.fromkeys(addresses):  # in resolver order, each once; only checked addresses
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise DeniedAddress("unix sockets are not reachable from http steps")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__(trust_env=False)
        # httpx has no parameter for the network backend: rebuild its pool with ours (same defaults).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_GuardedBackend(),
        )


def _client_for_loop() -> httpx.AsyncClient:
    """The shared client; recreated if the loop changed (a client's connections belong to one loop)."""
    global _client, _client_loop
    loop = asyncio.get_running_loop()
    if _client is None or _client_loop is not loop or _client.is_closed:
        _client = httpx.AsyncClient(
            timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
            follow_redirects=False,
            trust_env=False,
            transport=_GuardedTransport(),
        )
        _client_loop = loop
    return _client


async def aclose_http_client() -> None:
    """Close the shared client at shutdown (from the loop that used it)."""
    global _client, _client_loop
    client, _client, _client_loop = _client, None, None
    if client is not None:
        await client.aclose()


async def _read_body(response: httpx.Response, target: str) -> bytes:
    """The decoded body; stops past MAX_BODY_BYTES instead of reading on (a stream can be endless)."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PermanentError(f"{target}: response too large ({declared} bytes; limit {MAX_BODY_BYTES} bytes)")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise PermanentError(f"{target}: response too large (over the limit of {MAX_BODY_BYTES} bytes)")
    return bytes(body)


async def _read_head(response: httpx.Response) -> bytes:
    """The start of an error response's body, for the message; the rest is never read."""
    head = bytearray()
    async for chunk in response.aiter_bytes():
        head += chunk
        if len(head) >= _BODY_IN_ERROR:
            break
    return bytes(head[:_BODY_IN_ERROR])


def _body(response: httpx.Response, raw: bytes) -> Any:
    text = raw.decode(response.encoding or "utf-8", errors="replace")
    if "json" in response.headers.get("content-type", ""):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


class HttpStep:
    """5xx, 408, 429 and network errors are transient; other unexpected statuses are permanent."""

    name = "http"

    async def run(self, ctx: StepContext, params: Mapping[str, Any]) -> Any:
        try:
            cfg = parse_http(params, resolved=True)
        except ParamError as exc:
            raise param_error_to_step_error(exc) from None
        assert cfg.method is not None and cfg.url is not None
        headers = dict(cfg.headers or {})
        if not any(key.lower() == "idempotency-key" for key in headers):
            headers["Idempotency-Key"] = ctx.idempotency_key
        kwargs: dict[str, Any] = {"headers": headers}
        if "json" in params:
            kwargs["json"] = params["json"]
        target = f"{cfg.method} {cfg.url}"
        try:
            async with (
                asyncio.timeout(TOTAL_TIMEOUT_S),
                _client_for_loop().stream(cfg.method, cfg.url, **kwargs) as response,
            ):
                status = response.status_code
                expected = (
                    status in cfg.expect_status if cfg.expect_status is not None else 200 <= status < 300
                )
                raw = await (_read_body(response, target) if expected else _read_head(response))
        except DeniedAddress as exc:
            raise PermanentError(f"{target}: {exc}") from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise PermanentError(f"{target}: {exc}") from None
        except httpx.TimeoutException as exc:
            raise StepError(f"{target}: timed out ({type(exc).__name__})", "transient") from None
        except TimeoutError:
            raise StepError(f"{target}: timed out after {TOTAL_TIMEOUT_S:g}s in total", "transient") from None
        except httpx.TransportError as exc:
            raise StepError(f"{target}: {type(exc).__name__}: {exc}", "transient") from None
        if expected:
            return {"status": status, "body": _body(response, raw)}
        snippet = raw[:_BODY_IN_ERROR].decode("utf-8", errors="replace")
        message = f"{target}: unexpected status {status}: {snippet}"
        if status >= 500 or status in _RETRYABLE_4XX:
            raise StepError(message, "transient")
        raise PermanentError(message)
