"""How the runtime classifies failures: retry (transient) or dead-letter (permanent)."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

import asyncpg
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError

from .rules import RuleRefused

__all__ = ["TRANSIENT_ERRORS", "Rejected", "RuleRefused", "is_transient"]


class Rejected(RuleRefused):
    """A business rule refuses this event (e.g. duplicate assistance). Dead-lettered with
    the reason; never retried."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,  # refused, reset, aborted, broken pipe (not every OSError: a handler's
    socket.gaierror,  # FileNotFoundError is a bug to dead-letter, not to retry forever)
    TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InterfaceError,
    # A connection the server has just dropped can fail its next statement with an asyncpg
    # state error ("cannot switch to state 15; another operation (2) is in progress")
    # before the client sees it closed; the record is not at fault, a new connection works
    # (seen under a PostgreSQL restart in tests/faults: it used to be dead-lettered).
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT_ERRORS)


def validation_message(error: Mapping[str, Any]) -> str:
    """The reason of one pydantic validation error as a person should read it: pydantic
    prefixes what a validator raised with "Value error, " (or "Assertion failed, ")."""
    message = str(error.get("msg", ""))
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message
