"""docs/integrators.md, followed word for word, as partners run it (librdkafka through
confluent-kafka, the contracts package, a partner's Kafka principal): its consumer program
reads deliveries as `reporting` and stops at the end; its intake program publishes a
household as `partners`, and the partner reads what became of it with its own intake token."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from typing import Any
from uuid import uuid4

import httpx
import pytest
from aidmesh_contracts import AssistanceDelivered
from aidmesh_contracts.examples import example
from aidmesh_runtime import auth
from aidmesh_runtime.testing import kafka_producer, publish

from .conftest import REPO, Platform

pytestmark = pytest.mark.e2e

GUIDE = REPO / "docs" / "integrators.md"


def program_in_section(heading: str) -> str:
    """The first ```python block under `heading` in the guide."""
    text = GUIDE.read_text(encoding="utf-8")
    section = text[text.index(f"## {heading}") :]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found is not None, f"no python program under '{heading}'"
    return found.group(1)


async def run_the_guides_program(heading: str) -> subprocess.CompletedProcess[str]:
    """The first ```python block under `heading`, run from the repository root as a
    partner would run it, with this environment's Python."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", program_in_section(heading)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


async def outcome(
    platform: Platform, submission_id: str, *, deadline_s: float = 60.0
) -> dict[str, Any]:
    """The submission as its partner reads it, once registration has processed it."""
    url = f"{platform.url('registration')}/intake/submissions/DRC/{submission_id}"
    headers = platform.token(auth.REGISTRATION_INTAKE, org="DRC", sub="partner:drc-system")
    deadline = time.monotonic() + deadline_s
    async with httpx.AsyncClient(timeout=10, headers=headers) as client:
        while True:
            response = await client.get(url)
            if response.status_code == 200:
                return dict(response.json())
            assert response.status_code == 404, response.text
            assert time.monotonic() < deadline, f"{submission_id} not processed in time"
            await asyncio.sleep(0.2)


async def test_the_guides_intake_program_registers_a_household_its_partner_then_reads(
    platform: Platform,
) -> None:
    ran = await run_the_guides_program("Publish an intake submission from outside")

    assert ran.returncode == 0, ran.stderr
    submission_id = ran.stdout.strip()
    seen = await outcome(platform, submission_id)
    assert seen["status"] == "registered", seen["reasons"]
    assert seen["household_id"] is not None
    assert seen["partner_org"] == "DRC"


async def test_the_guides_consumer_program_reads_a_delivery_as_its_partner_and_stops(
    platform: Platform,
) -> None:
    delivery = AssistanceDelivered.model_validate(
        example(AssistanceDelivered.event_type) | {"delivery_id": str(uuid4())}
    )
    async with kafka_producer() as producer:
        envelope = await publish(producer, delivery, source="/aidmesh/shelter")
    ran = await run_the_guides_program("Subscribe with the contracts package")

    assert ran.returncode == 0, ran.stderr
    assert f"{envelope.id} {delivery.activity} {delivery.household_id}" in ran.stdout
