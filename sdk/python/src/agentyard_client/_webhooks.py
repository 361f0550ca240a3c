"""The receiving end of webhooks: checking that a delivery comes from the yard.

Each delivery is a ``POST`` signed with the webhook's secret: ``Agentyard-Timestamp`` (Unix
seconds) and ``Agentyard-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>">``. A receiver
checks both before it believes the body (:func:`verify_webhook`), then reads it with
:meth:`~agentyard_client.WebhookPayload.parse`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any, Iterable, Optional, Protocol, Union

__all__ = [
    "DELIVERY_ID_HEADER",
    "EVENT_TYPE_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "verify_webhook",
    "webhook_signature",
]

SIGNATURE_HEADER = "Agentyard-Signature"
TIMESTAMP_HEADER = "Agentyard-Timestamp"
#: ``<webhook id>:<seq>``, the same on every attempt at one event: what to de-duplicate by.
DELIVERY_ID_HEADER = "Agentyard-Delivery-Id"
EVENT_TYPE_HEADER = "Agentyard-Event-Type"


class _HasItems(Protocol):
    def items(self) -> Iterable[tuple[Any, Any]]: ...


#: Request headers as frameworks hand them over: a mapping (``dict``, ``httpx.Headers``,
#: ``http.server``'s ``self.headers``, Starlette's, Flask's …) or ``(name, value)`` pairs of
#: ``str`` or ``bytes`` (an ASGI scope's ``headers``).
Headers = Union[_HasItems, Iterable[tuple[Any, Any]]]


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)


def _header(headers: Headers, name: str) -> Optional[str]:
    """The first value of ``name``, compared case-insensitively."""
    pairs = headers.items() if hasattr(headers, "items") else headers
    wanted = name.lower()
    for key, value in pairs:
        if _text(key).lower() == wanted:
            return _text(value).strip()
    return None


def _as_bytes(value: Union[bytes, bytearray, memoryview, str]) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _signature(secret: bytes, stamp: str, body: bytes) -> str:
    # Over the timestamp exactly as the header carries it: what the server signed.
    mac = hmac.new(secret, stamp.encode("utf-8", "replace") + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def webhook_signature(
    secret: Union[str, bytes], timestamp: int, body: Union[bytes, bytearray, memoryview, str]
) -> str:
    """The ``Agentyard-Signature`` value the server sends for ``body`` at ``timestamp`` (Unix
    seconds): ``v1=`` and the hex HMAC-SHA256 of ``"<timestamp>.<body>"`` keyed by ``secret``
    (a ``str`` secret or body is taken as UTF-8). For tests of a receiver."""
    return _signature(_as_bytes(secret), str(int(timestamp)), _as_bytes(body))


def verify_webhook(
    headers: Headers,
    body: Union[bytes, bytearray, memoryview, str],
    secret: Union[str, bytes],
    tolerance_s: Optional[float] = 300,
    *,
    now: Optional[float] = None,
) -> bool:
    """Whether a request is a genuine, fresh webhook delivery: its ``Agentyard-Signature``
    matches the HMAC-SHA256 of ``"<Agentyard-Timestamp>.<body>"`` keyed by ``secret``
    (compared in constant time), and its timestamp is within ``tolerance_s`` seconds of
    ``now`` (default: the clock; ``tolerance_s=None`` skips that check, for replays you
    trust). ``body`` must be the raw bytes received, before any JSON parsing. Headers are
    matched case-insensitively; missing or malformed ones give ``False``, never an
    exception. Answer 2xx only once the delivery is handled: anything else is retried.

    ::

        class Receiver(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if not verify_webhook(self.headers, body, SECRET):
                    self.send_response(401)
                else:
                    delivery = WebhookPayload.parse(body)
                    ...  # de-duplicate by delivery.delivery_id, then handle delivery.event
                    self.send_response(204)
                self.end_headers()
    """
    stamp = _header(headers, TIMESTAMP_HEADER)
    signature = _header(headers, SIGNATURE_HEADER)
    if stamp is None or signature is None:
        return False
    try:
        timestamp = int(stamp)
    except ValueError:
        return False
    if tolerance_s is not None:
        clock = time.time() if now is None else now
        if abs(clock - timestamp) > tolerance_s:
            return False
    expected = _signature(_as_bytes(secret), stamp, _as_bytes(body))
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))
