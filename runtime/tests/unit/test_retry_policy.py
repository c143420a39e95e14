"""Retry policy: bounded exponential backoff with full jitter; what is worth a retry."""

from __future__ import annotations

import asyncpg
import pytest
from aidmesh_runtime import outbox
from aidmesh_runtime.errors import Rejected, is_transient
from aidmesh_runtime.outbox import _backoff
from aiokafka.errors import KafkaConnectionError


@pytest.fixture
def worst_case_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the jitter always pick the top of its range, so the bound itself is visible."""
    monkeypatch.setattr(outbox.random, "uniform", lambda low, high: high)


@pytest.mark.usefixtures("worst_case_jitter")
def test_the_backoff_doubles_with_each_attempt() -> None:
    assert [_backoff(attempt, cap=30.0) for attempt in (1, 2, 3, 4)] == [0.4, 0.8, 1.6, 3.2]


@pytest.mark.usefixtures("worst_case_jitter")
def test_the_backoff_never_exceeds_its_cap() -> None:
    assert _backoff(12, cap=30.0) == 30.0


@pytest.mark.usefixtures("worst_case_jitter")
def test_the_backoff_stays_at_its_cap_during_an_outage_of_many_hours() -> None:
    # Attempts keep counting for as long as the database or broker is down.
    assert _backoff(10_000, cap=30.0) == 30.0


def test_the_backoff_is_jittered_between_zero_and_its_bound() -> None:
    delays = [_backoff(3, cap=30.0) for _ in range(500)]

    assert all(0.0 <= d <= 1.6 for d in delays)
    assert len(set(delays)) > 1


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.exceptions.SerializationError("could not serialize access"),
        KafkaConnectionError("broker down"),
    ],
    ids=type,
)
def test_an_unavailable_database_or_broker_is_worth_a_retry(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        Rejected("over the entitlement"),
        ValueError("a bug"),
        asyncpg.exceptions.UniqueViolationError("duplicate key"),
    ],
    ids=type,
)
def test_a_rejection_or_a_bug_is_not_retried(error: BaseException) -> None:
    assert not is_transient(error)
