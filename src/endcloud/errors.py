"""Every user-facing error, in one place; translated to exit codes (CLI) or HTTP statuses only at
the edges. Each code belongs to one class (a subclass without its own code shares its parent's):

| code | class                 | meaning                                                        |
|------|-----------------------|----------------------------------------------------------------|
| 1    | `EndcloudError`       | any other expected failure (the base class)                    |
| 2    | `ConfigError`         | an invalid config file or override; the message names the key  |
| 3    | `DataFormatError`     | malformed input data; the message names file, line and problem |
| 4    | `PrivacyError`        | text could not be masked safely, so it must not leave the machine |
| 5    | `StoreError`          | the SQLite store is corrupt, newer, or locked                  |
| 6    | `MissingExtraError`   | an optional dependency is not installed                        |
| 7    | `CloudError`          | a call to the teacher failed (and its subclasses: `TransientError`, `MalformedReplyError`, `DeadlineError`, `RequestRejectedError`, `AuthError`, `CircuitOpenError`) |
| 8    | `AdapterError`        | an adapter folder is missing, corrupt, unsafe or for another base |
| 9    | `RegistryError`       | the evolve registry cannot do what was asked                   |
| 10   | `ModelError`          | a base model cannot be found, fetched or loaded                |
| 11   | `ModelFetchError`     | a packaged model could not be downloaded, assembled or verified |
| 12   | `KnowledgeError`      | a knowledge index folder is missing, empty or corrupt          |
| 13   | `MissingWeightsError` | no trained matcher where one was asked for                     |

130 (interrupted) is the CLI's own; `tests/test_errors.py` checks the codes stay unique.
"""

from __future__ import annotations


class EndcloudError(Exception):
    """Base class: an expected failure with a message a user can act on."""

    exit_code = 1


class ConfigError(EndcloudError):
    """A configuration file or override is invalid; the message names the key."""

    exit_code = 2


class DataFormatError(EndcloudError):
    """Malformed input data; the message names the file, the line and the problem."""

    exit_code = 3

    def __init__(self, path: object, line: int | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


class PrivacyError(EndcloudError):
    """Text could not be masked safely; it must not leave the machine."""

    exit_code = 4


class StoreError(EndcloudError):
    """The store is unusable (corrupt, newer schema, locked beyond the timeout, a PostgreSQL
    server that cannot be reached at start)."""

    exit_code = 5


class StoreUnavailableError(StoreError):
    """The store stopped answering while serving (a PostgreSQL server restarting or gone): the
    write was not made; the service answers 503 with Retry-After and reconnects."""


class MissingExtraError(EndcloudError):
    """An optional dependency is not installed."""

    exit_code = 6

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"{module} is not installed - run: pip install 'endcloud[{extra}]' (or `make test`)"
        )


# The teacher (endcloud.cloud). `retryable` errors are the only ones the client's single retry
# layer repeats. Messages never contain the API key or unmasked text: they name the failure kind,
# the HTTP status and a short, key-redacted excerpt of what the server said.


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


class AdapterError(EndcloudError):
    """An adapter folder is missing, corrupt, unsafe or made for another base model."""

    exit_code = 8


class RegistryError(EndcloudError):
    """The registry cannot do what was asked (unknown adapter, nothing to roll back to)."""

    exit_code = 9


class ModelError(EndcloudError):
    """A base model cannot be found, fetched or loaded."""

    exit_code = 10


class ModelFetchError(EndcloudError):
    """A packaged model could not be downloaded, assembled or verified."""

    exit_code = 11


class KnowledgeError(EndcloudError):
    """An index folder that is missing, empty or corrupt; the message names the path."""

    exit_code = 12


class MissingWeightsError(EndcloudError, FileNotFoundError):
    """No trained matcher where one was asked for (still a FileNotFoundError for old callers)."""

    exit_code = 13
