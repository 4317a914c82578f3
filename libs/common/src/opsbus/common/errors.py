"""Errors as types: how a handler tells the bus what to do with a message.

A handler raises `TransientError` when trying again later may succeed (a timeout, a 5xx, a conflict):
the bus naks the message with a delay. It raises `PermanentError` when no retry can help (invalid
input, a rule violation): the bus terminates the message and copies it to the dead-letter stream with the
reason. Anything else that escapes a handler is treated as transient until `max_deliver` runs out, then
dead-lettered, so a bug never loses an event silently.

Always raise these `from` the original exception so the cause stays visible in logs and traces.
"""

from __future__ import annotations


class OpsbusError(Exception):
    """Base of every error opsbus raises on purpose."""


class TransientError(OpsbusError):
    """Retrying later may succeed. `delay` (seconds) overrides the consumer's backoff when set."""

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(OpsbusError):
    """No retry can help: the message goes to the dead-letter stream with this reason."""


class UndecodableError(PermanentError):
    """The message is not a valid opsbus event (bad JSON, bad envelope, unknown type, bad payload)."""


class SkipError(OpsbusError):
    """The event is acknowledged without action, with a recorded reason (stale, superseded, duplicate)."""


class ConfigurationError(OpsbusError):
    """Settings are invalid or unsafe for the environment; raised at startup, never at run time."""


class SchemaMismatchError(ConfigurationError):
    """The database schema is not the one this service version knows; run the `migrate` entrypoint."""


class NotFoundError(PermanentError):
    """The thing asked for does not exist (a request-reply endpoint answers 404)."""


class ConflictError(PermanentError):
    """The request conflicts with the current state: a stale version, a duplicate (409)."""


def error_for_status(status: int, detail: str) -> OpsbusError:
    """The typed error for an HTTP status from the Kubernetes API (or any HTTP API), so every service retries
    the same answers: 404 -> NotFound, 409 -> Conflict (a precondition such as resourceVersion failed), 429 and
    5xx -> Transient, 0 (no HTTP answer at all: connection refused, reset) -> Transient, the rest -> Permanent."""
    if status == 404:
        return NotFoundError(detail)
    if status == 409:
        return ConflictError(detail)
    if status in {0, 429} or status >= 500:
        return TransientError(detail)
    return PermanentError(detail)
