"""The bridge's exceptions: one home for every error a user can meet."""

from __future__ import annotations


class BridgeError(Exception):
    """Base class of the bridge's own errors."""


class ConfigError(BridgeError):
    """The configuration is invalid. ``problems`` lists each one as ``key.path: what is wrong``."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class BatchRejected(BridgeError):
    """A whole request cannot be taken (unknown route, malformed batch, ...).

    Carries what the status mapper needs: a gRPC code name, an UPPER_SNAKE
    reason, a message, metadata for ErrorInfo and, optionally, row errors.
    """

    def __init__(
        self,
        code: str,
        reason: str,
        message: str,
        metadata: dict[str, str] | None = None,
        row_errors: list | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.metadata = metadata or {}
        self.row_errors = row_errors or []
        self.retry_after = retry_after


class SpoolError(BridgeError):
    """A route's spool cannot be used: its directory is locked by another process, unwritable, closed."""


class ListenError(BridgeError):
    """A port cannot be bound. ``kind`` says which one ("grpc", "http", "emulator"), ``address`` what was asked."""

    def __init__(self, kind: str, address: str, reason: str) -> None:
        self.kind = kind
        self.address = address
        self.reason = reason
        super().__init__(f"cannot listen on {address}: {reason}")
