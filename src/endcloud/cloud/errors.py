"""What can go wrong talking to the teacher, and whether trying again can help.

`retryable` errors are the only ones the client's single retry layer repeats. Messages never
contain the API key or unmasked text: they name the failure kind, the HTTP status and a short,
key-redacted excerpt of what the server said.
"""

from __future__ import annotations

from endcloud.errors import EndcloudError


class CloudError(EndcloudError):
    """A call to the teacher failed. `kind` is short and stable (e.g. `http_503`, `truncated`)."""

    exit_code = 7
    retryable = False
    counts_against_breaker = True

    def __init__(self, kind: str, message: str = "", *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        self.kind = kind
        self.status = status
        self.retry_after = retry_after
        self.attempts = 0
        super().__init__(f"{kind}: {message}" if message else kind)


class TransientError(CloudError):
    """Timeout, connection error, or HTTP 408/409/429/5xx: the same request may succeed later."""

    retryable = True


class MalformedReplyError(CloudError):
    """The server answered 200 but the reply is unusable as a label (the kind says why)."""

    retryable = True
    # An HTML page or broken JSON means a sick server or proxy; an empty, truncated or refused
    # answer to one prompt says nothing about the server's health.
    SERVER_FAULTS = frozenset({"html_body", "invalid_json", "bad_schema", "error_body"})

    @property  # type: ignore[override]
    def counts_against_breaker(self) -> bool:
        return self.kind in self.SERVER_FAULTS


class DeadlineError(CloudError):
    """The call's wall-clock deadline ran out (attempts, waits and slow reads included)."""


class RequestRejectedError(CloudError):
    """HTTP 4xx other than 408/409/429: sending the same request again cannot help."""

    counts_against_breaker = False


class AuthError(RequestRejectedError):
    """No key, or the endpoint refused the key (401/403). Stops a label job."""


class CircuitOpenError(CloudError):
    """The circuit breaker is open after repeated failures; nothing was sent."""

    counts_against_breaker = False

    def __init__(self, retry_in: float) -> None:
        super().__init__("circuit_open", f"too many recent failures; next probe in {retry_in:.1f} s")
        self.retry_in = retry_in
