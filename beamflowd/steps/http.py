"""``http``: one HTTP request via a shared httpx client, with an ``Idempotency-Key`` per attempt."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

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

# One client per process (connection pooling across all workflows), bound to the loop that created it.
_client: httpx.AsyncClient | None = None
_client_loop: asyncio.AbstractEventLoop | None = None


def _client_for_loop() -> httpx.AsyncClient:
    """The shared client; recreated if the loop changed (a client's connections belong to one loop)."""
    global _client, _client_loop
    loop = asyncio.get_running_loop()
    if _client is None or _client_loop is not loop or _client.is_closed:
        _client = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=False)
        _client_loop = loop
    return _client


async def aclose_http_client() -> None:
    """Close the shared client at shutdown (from the loop that used it)."""
    global _client, _client_loop
    client, _client, _client_loop = _client, None, None
    if client is not None:
        await client.aclose()


def _body(response: httpx.Response) -> Any:
    if "json" in response.headers.get("content-type", ""):
        try:
            return response.json()
        except ValueError:
            pass
    return response.text


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
            response = await _client_for_loop().request(cfg.method, cfg.url, **kwargs)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise PermanentError(f"{target}: {exc}") from None
        except httpx.TimeoutException as exc:
            raise StepError(f"{target}: timed out ({type(exc).__name__})", "transient") from None
        except httpx.TransportError as exc:
            raise StepError(f"{target}: {type(exc).__name__}: {exc}", "transient") from None
        status = response.status_code
        expected = status in cfg.expect_status if cfg.expect_status is not None else 200 <= status < 300
        body = _body(response)
        if expected:
            return {"status": status, "body": body}
        snippet = response.text[:_BODY_IN_ERROR]
        message = f"{target}: unexpected status {status}: {snippet}"
        if status >= 500 or status in _RETRYABLE_4XX:
            raise StepError(message, "transient")
        raise PermanentError(message)
