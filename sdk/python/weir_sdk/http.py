"""Outbound HTTP through wasi:http: requests go only to the hosts the
agent's manifest grants (``http = ["https://api.example.com"]``), carry the
task's idempotency key, and under durable execution are recorded so that a
re-run after a crash does not send them again::

    from weir_sdk import http

    response = http.post("https://api.example.com/charges", json={"amount": 250})
    if response.status != 200:
        raise ActionError("declined", response.text())
    charge = response.json()

A request weir refuses (the host is not granted) raises :class:`HostError`
with code ``denied``; one that fails on the way (connection refused, a
timeout) raises it with code ``host-failed``.
"""

from __future__ import annotations

import json as _json
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

from componentize_py_types import Err
from wit_world.imports import outgoing_handler
from wit_world.imports import streams as _streams
from wit_world.imports import wasi_http_types as _h

from . import ActionError, HostError

__all__ = ["Response", "request", "get", "post"]

#: Largest response body read, in bytes: a bigger one fails the request.
MAX_BODY_BYTES = 16 << 20

_METHODS = {
    "GET": _h.Method_Get,
    "HEAD": _h.Method_Head,
    "POST": _h.Method_Post,
    "PUT": _h.Method_Put,
    "DELETE": _h.Method_Delete,
    "PATCH": _h.Method_Patch,
    "OPTIONS": _h.Method_Options,
}


class Response:
    """An HTTP response: its status, headers (name, value) and body."""

    def __init__(self, status: int, headers: List[Tuple[str, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> Optional[str]:
        """The first value of header ``name`` (any case), or None."""
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value.decode("latin-1")
        return None

    def text(self) -> str:
        """The body as UTF-8 text."""
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body decoded from JSON."""
        try:
            return _json.loads(self.body)
        except ValueError as e:
            raise ActionError("bad-response", f"the response is not JSON: {e}") from None


def _failed(err: Err) -> HostError:
    # wasi:http's error-code variant: HttpRequestDenied is weir's refusal.
    kind = type(err.value).__name__.removeprefix("ErrorCode_")
    if kind == "HttpRequestDenied":
        return HostError("denied", "the agent grants this action no such HTTP host")
    detail = getattr(err.value, "value", None)
    return HostError("host-failed", f"HTTP request failed: {kind}" + (f" ({detail})" if detail else ""))


def request(
    method: str,
    url: str,
    headers: Optional[Dict[str, str]] = None,
    body: Optional[bytes] = None,
) -> Response:
    """Sends a request and waits for its whole response."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ActionError("invalid", f"not an http(s) URL: {url!r}")
    try:
        fields = _h.Fields.from_list([(k, v.encode()) for k, v in (headers or {}).items()])
        req = _h.OutgoingRequest(fields)
        method_case = _METHODS.get(method.upper())
        req.set_method(method_case() if method_case else _h.Method_Other(method))
        req.set_scheme(_h.Scheme_Https() if parts.scheme == "https" else _h.Scheme_Http())
        req.set_authority(parts.netloc)
        req.set_path_with_query((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        outgoing = req.body()
        if body:
            with outgoing.write() as stream:
                for at in range(0, len(body), 4096):
                    stream.blocking_write_and_flush(body[at : at + 4096])
        _h.OutgoingBody.finish(outgoing, None)
        future = outgoing_handler.handle(req, None)
        with future.subscribe() as ready:
            ready.block()
        # Some(Ok(Ok(response))), or Some(Ok(Err(error-code))).
        result = future.get()
        if result is None or isinstance(result, Err):
            raise HostError("host-failed", "the HTTP response never came")
        if isinstance(result.value, Err):
            raise result.value
        response = result.value.value
        status, response_headers = response.status(), response.headers().entries()
        incoming = response.consume()
        chunks, size = [], 0
        with incoming.stream() as stream:
            while True:
                try:
                    chunk = stream.blocking_read(65536)
                except Err as e:
                    if isinstance(e.value, _streams.StreamError_Closed):
                        break
                    raise HostError("host-failed", "reading the HTTP response failed") from None
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise HostError("limit", f"the HTTP response is over {MAX_BODY_BYTES} bytes")
                chunks.append(chunk)
        return Response(status, response_headers, b"".join(chunks))
    except Err as err:
        raise _failed(err) from None


def get(url: str, headers: Optional[Dict[str, str]] = None) -> Response:
    """``GET url``."""
    return request("GET", url, headers)


def post(
    url: str,
    json: Any = None,
    data: Optional[bytes] = None,
    headers: Optional[Dict[str, str]] = None,
) -> Response:
    """``POST url`` with a JSON body (``json``) or raw bytes (``data``)."""
    headers = dict(headers or {})
    if json is not None:
        data = _json.dumps(json).encode()
        headers.setdefault("content-type", "application/json")
    return request("POST", url, headers, data)
