"""A producing service killed around the outbox relay's publish loses nothing, and a
consumer applies its events once.

Registration runs with an injected crash point (`AIDMESH_REGISTRATION_FAULT_CRASH_POINT`):
the relay exits like `kill -9` right before, or right after, sending a batch. A household
registered over HTTP (201: the domain rows and outbox rows are committed) makes the relay
pick up its events and die. Restarted without the crash point, the relay publishes them:
once if it died before publishing; twice if it died after, since `sent_at` was never
written. Health, running throughout, applies them once and skips the second copies.

And a relay whose database session PostgreSQL ends (the session holding its lock and its
LISTEN) leads again from a new one.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from aidmesh_contracts.topics import HOUSEHOLD, NEED
from aidmesh_runtime import auth
from aidmesh_runtime.testing import auth_headers, event_log
from aiokafka import TopicPartition

pytestmark = pytest.mark.faults

CRASH_POINT = "AIDMESH_REGISTRATION_FAULT_CRASH_POINT"
#: The key of the relay's advisory lock (aidmesh_runtime.outbox), as pg_locks shows it.
RELAY_LOCK = 0x4F_55_54_42


async def register(url: str, body: dict[str, Any], correlation_id: UUID) -> str:
    """POST a household; the answer's status, or how the connection failed (the process
    may die before it answers: the outbox row is what proves the commit then)."""
    async with httpx.AsyncClient(timeout=10) as http:
        try:
            # A field office's token: registration:write only (ADR 0009).
            headers = auth_headers(auth.REGISTRATION_WRITE, sub="user:faults-field-office")
            response = await http.post(
                url + "/households",
                json=body,
                headers=headers | {"X-Correlation-Id": str(correlation_id)},
            )
        except httpx.TransportError as exc:
            return type(exc).__name__
    assert response.status_code == 201, response.text
    return str(response.status_code)


@pytest.mark.parametrize(
    ("crash_point", "copies_on_the_wire"),
    [("relay_before_publish", 1), ("relay_after_publish", 2)],
)
async def test_a_relay_killed_around_publish_loses_nothing_and_the_consumer_applies_once(
    crash_point: str,
    copies_on_the_wire: int,
    databases: Any,
    services: Any,
    kafka: Any,
    poll: Any,
    household: Any,
    report: Any,
) -> None:
    registration_db = await databases.create("registration", owner="aidmesh_registration")
    health_db = await databases.create("health", owner="aidmesh_health")
    group = f"aidmesh-health-faults-{uuid4().hex[:10]}"
    await kafka.group_at_end(group, HOUSEHOLD, NEED)
    health = await services.start("health", database=health_db, group=group)
    registration = await services.start(
        "registration", database=registration_db, env={CRASH_POINT: crash_point}
    )

    async with event_log(bootstrap=kafka.bootstrap, topics=[HOUSEHOLD, NEED]) as wire:
        correlation_id = uuid4()
        t0 = time.monotonic()
        answer = await register(registration.url, household(), correlation_id)
        exit_code = await registration.wait_exit()
        crashed_after_s = time.monotonic() - t0
        household_id = await databases.fetchval(
            registration_db,
            "SELECT household_id FROM households WHERE correlation_id = $1",
            correlation_id,
        )
        outbox = await databases.fetch(registration_db, "SELECT event_id, sent_at FROM outbox")
        ours = {row["event_id"] for row in outbox}

        def on_the_wire() -> Counter[UUID]:
            return Counter(
                r.envelope.id for r in wire.records if r.envelope and r.envelope.id in ours
            )

        if crash_point == "relay_after_publish":

            async def published_once() -> bool:
                return set(on_the_wire()) == ours

            await poll(published_once, what="the events published before the crash")
        on_the_wire_at_crash = sum(on_the_wire().values())
        applied_at_crash = await databases.fetchval(
            health_db, "SELECT count(*) FROM inbox WHERE event_id = ANY($1::uuid[])", list(ours)
        )

        t1 = time.monotonic()
        registration.start(without=[CRASH_POINT])
        restart_ready_s = await registration.wait_ready()

        async def all_marked_sent() -> bool:
            return not await databases.fetchval(
                registration_db, "SELECT count(*) FROM outbox WHERE sent_at IS NULL"
            )

        await poll(all_marked_sent, what="the outbox relayed after the restart")
        relayed_after_restart_s = time.monotonic() - t1

        async def visit_completed() -> bool:
            return bool(
                await databases.fetchval(
                    health_db, "SELECT count(*) FROM visits WHERE household_id = $1", household_id
                )
            )

        await poll(visit_completed, what="health to complete the household's visit")
        applied_after_restart_s = time.monotonic() - t1

        def skipped() -> list[dict[str, Any]]:
            return [
                entry
                for entry in health.log_events("event_duplicate_skipped")
                if UUID(entry["event_id"]) in ours
            ]

        async def every_copy_seen_by_health() -> bool:
            return len(skipped()) >= (copies_on_the_wire - 1) * len(ours)

        await poll(every_copy_seen_by_health, what="health to receive the second copies")

        # Read the partitions to their current end, so a copy too many would be counted.
        partitions = {
            TopicPartition(r.topic, r.partition)
            for r in wire.records
            if r.envelope and r.envelope.id in ours
        }

        async def wire_read_to_the_end() -> bool:
            ends = await kafka.end_offsets(partitions)
            seen = {
                tp: max(r.offset for r in wire.records if (r.topic, r.partition) == tp)
                for tp in partitions
            }
            return all(seen[tp] >= end - 1 for tp, end in ends.items())

        await poll(wire_read_to_the_end, what="the topics read to their end")
        copies = on_the_wire()

    visits = await databases.fetchval(
        health_db, "SELECT count(*) FROM visits WHERE household_id = $1", household_id
    )
    inbox = await databases.fetchval(
        health_db, "SELECT count(*) FROM inbox WHERE event_id = ANY($1::uuid[])", list(ours)
    )
    dead_lettered = [  # ours: others may put poison on the shared topics
        e
        for e in health.log_events("event_dead_lettered")
        if e.get("household_id") == str(household_id)
    ]
    report(
        f"relay-crash-{crash_point.removeprefix('relay_').replace('_', '-')}",
        kill_point=crash_point,
        http_answer=answer,
        exit_code=exit_code,
        crashed_after_s=crashed_after_s,
        events_committed=len(ours),
        records_on_the_wire_at_crash=on_the_wire_at_crash,
        applied_by_health_at_crash=applied_at_crash,
        restart_ready_s=restart_ready_s,
        relayed_after_restart_s=relayed_after_restart_s,
        applied_after_restart_s=applied_after_restart_s,
        records_on_the_wire=sum(copies.values()),
        records_seen_by_health=inbox + len(skipped()),
        health_inbox_rows=inbox,
        duplicates_skipped=len(skipped()),
        visits=visits,
    )
    assert exit_code == 137
    assert household_id is not None and len(ours) == 2  # HouseholdRegistered + NeedAssessed
    if crash_point == "relay_before_publish":
        assert (on_the_wire_at_crash, applied_at_crash) == (0, 0)
    assert copies == dict.fromkeys(ours, copies_on_the_wire)
    assert (visits, inbox) == (1, len(ours))
    assert len(skipped()) == (copies_on_the_wire - 1) * len(ours)
    assert dead_lettered == []


async def test_a_relay_whose_database_session_is_killed_leads_again_from_a_new_one(
    databases: Any,
    services: Any,
    kafka: Any,
    poll: Any,
    household: Any,
    report: Any,
) -> None:
    """The relay's advisory lock (one publisher per database) and its LISTEN live in one
    database session. When PostgreSQL ends that session (pg_terminate_backend here; a
    restart quicker than a poll interval, an idle-connection reaper, a failover do the
    same), the relay must notice and lead again from a new session: otherwise a second
    replica could publish next to it, and commits would no longer wake it."""
    registration_db = await databases.create("registration", owner="aidmesh_registration")
    # Polling so rarely that only a NOTIFY can get an event out within the test's deadline.
    registration = await services.start(
        "registration", database=registration_db, env={"AIDMESH_RELAY_POLL_INTERVAL_S": "60"}
    )

    async def relay_lock_held() -> bool:
        return bool(
            await databases.fetchval(
                "postgres",
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                "WHERE l.locktype = 'advisory' AND l.granted AND d.datname = $1 "
                "AND l.objid = $2",
                registration_db,
                RELAY_LOCK,
            )
        )

    async with event_log(bootstrap=kafka.bootstrap, topics=[HOUSEHOLD]) as wire:

        async def published_in(correlation_id: UUID) -> float:
            t0 = time.monotonic()
            await register(registration.url, household(), correlation_id)

            async def on_the_wire() -> bool:
                return bool(wire.of_flow(correlation_id))

            await poll(on_the_wire, what="the household published (woken by NOTIFY)", timeout_s=10)
            return time.monotonic() - t0

        await poll(relay_lock_held, what="the relay to take its lock")
        before_s = await published_in(uuid4())
        terminated = await databases.fetchval(
            "postgres",
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1",
            registration_db,
        )
        t0 = time.monotonic()
        await poll(relay_lock_held, what="the relay to lead again from a new session")
        led_again_s = time.monotonic() - t0
        after_s = await published_in(uuid4())

    report(
        "relay-session-killed",
        sessions_terminated=terminated,
        relay_poll_interval_s=60,
        published_before_s=before_s,
        relay_led_again_after_s=led_again_s,
        published_after_s=after_s,
        relay_failures_logged=len(registration.log_events("outbox_relay_failed")),
    )
    assert terminated >= 1
