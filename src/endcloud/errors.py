"""A small exception hierarchy; translated to exit codes (CLI) or HTTP statuses only at the edges."""

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
    """The SQLite store is unusable (corrupt, newer schema, locked beyond the timeout)."""

    exit_code = 5


class MissingExtraError(EndcloudError):
    """An optional dependency is not installed."""

    exit_code = 6

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"{module} is not installed - run: pip install 'endcloud[{extra}]' (or `make test`)"
        )
