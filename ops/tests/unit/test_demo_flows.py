"""Following the demo's flows from broker records: matching, completeness, summaries."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

from aidmesh_contracts.base import Event
from aidmesh_contracts.envelope import Envelope, encode, new_envelope
from aidmesh_contracts.events.assessment import NeedAssessed, ShelterNeedDetails
from aidmesh_contracts.events.assistance import AssistanceDelivered
from aidmesh_contracts.events.registration import Composition, HouseholdRegistered
from aidmesh_contracts.events.shelter import (
    DamageAssessed,
    RepairCompleted,
    RepairPlanned,
    ShelterCaseClosed,
    ShelterCaseOpened,
)
from aidmesh_ops.demo_data import DemoHousehold, Need, RepairPlan, generate_households
from aidmesh_ops.demo_flows import (
    DeadLetter,
    FlowTracker,
    SeenEvent,
    Unreadable,
    assistance_by_sector,
    by_oblast,
    counts_by_type,
    expected_steps,
    read_record,
    shelter_totals,
    timeline,
)

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def shelter_household(
    damage: str = "light", consents: frozenset[str] = frozenset({"registration", "referral"})
) -> DemoHousehold:
    base = generate_households(1, seed=3, today=date(2026, 11, 23))[0]
    need = Need(
        "shelter", 3, {"damage_level": damage, "tenure": "owner", "heating_available": True}
    )
    repair = RepairPlan(damage, "voucher", Decimal("12500.00")) if damage != "heavy" else None
    return replace(base, needs=(need,), repair=repair, adm1_pcode="UA63", consents=consents)


class Flowing:
    """Publishes a flow's events the way the services do (envelopes chained by causation)."""

    def __init__(self, household_id: UUID) -> None:
        self.household_id = household_id
        self.offset = 0

    def record(
        self, event: Event, *, source: str, caused_by: Envelope | None, at_ms: int
    ) -> tuple[SeenEvent, Envelope]:
        envelope = new_envelope(
            event, source=source, time=T0 + timedelta(milliseconds=at_ms), caused_by=caused_by
        )
        self.offset += 1
        item = read_record(
            topic=event.topic,
            partition=0,
            offset=self.offset,
            headers=envelope.to_headers(),
            value=encode(event),
        )
        assert isinstance(item, SeenEvent)
        return item, envelope

    def light_repair_flow(self) -> list[SeenEvent]:
        hid = self.household_id
        location = {"adm1_pcode": "UA63"}
        registered, root = self.record(
            HouseholdRegistered(
                household_id=hid,
                registered_at=T0,
                channel="field_office",
                location=location,
                displacement_status="idp",
                size=2,
                composition=Composition(female_18_59=1, male_0_17=1),
                consents=frozenset({"registration"}),
            ),
            source="/aidmesh/registration",
            caused_by=None,
            at_ms=0,
        )
        need, need_env = self.record(
            NeedAssessed(
                assessment_id=uuid4(),
                household_id=hid,
                sector="shelter",
                severity=3,
                assessed_at=T0,
                assessed_by="IOM-REG",
                details=ShelterNeedDetails(damage_level="light"),
            ),
            source="/aidmesh/registration",
            caused_by=root,
            at_ms=2,
        )
        case_id = uuid4()
        opened, opened_env = self.record(
            ShelterCaseOpened(
                case_id=case_id,
                household_id=hid,
                severity=3,
                damage_level="light",
                location=location,
                opened_at=T0,
            ),
            source="/aidmesh/shelter",
            caused_by=need_env,
            at_ms=40,
        )
        assessed, assessed_env = self.record(
            DamageAssessed(
                case_id=case_id,
                household_id=hid,
                damage_level="light",
                estimated_cost={"amount": Decimal("12500.00")},
                boq_lines=2,
                assessed_by="ENG-DEMO-01",
                assessed_at=T0,
            ),
            source="/aidmesh/shelter",
            caused_by=opened_env,
            at_ms=300,
        )
        planned, planned_env = self.record(
            RepairPlanned(
                case_id=case_id,
                household_id=hid,
                category="light",
                modality="voucher",
                budget={"amount": Decimal("12500.00")},
                cap={"amount": Decimal("30000.00")},
                priority=42,
                planned_at=T0,
            ),
            source="/aidmesh/shelter",
            caused_by=assessed_env,
            at_ms=600,
        )
        repaired, repaired_env = self.record(
            RepairCompleted(
                case_id=case_id,
                household_id=hid,
                category="light",
                modality="voucher",
                value={"amount": Decimal("12500.00")},
                completed_at=T0,
            ),
            source="/aidmesh/shelter",
            caused_by=planned_env,
            at_ms=900,
        )
        delivered, _ = self.record(
            AssistanceDelivered(
                delivery_id=uuid4(),
                household_id=hid,
                sector="shelter",
                activity="shelter.light_repair",
                modality="voucher",
                quantity=Decimal(1),
                unit="repair",
                value={"amount": Decimal("12500.00")},
                persons_reached=2,
                partner_org="IOM",
                location=location,
                delivered_at=T0,
            ),
            source="/aidmesh/shelter",
            caused_by=repaired_env,
            at_ms=905,
        )
        closed, _ = self.record(
            ShelterCaseClosed(
                case_id=case_id, household_id=hid, reason_code="repaired", closed_at=T0
            ),
            source="/aidmesh/shelter",
            caused_by=repaired_env,
            at_ms=906,
        )
        return [registered, need, opened, assessed, planned, repaired, delivered, closed]


def test_a_light_damage_household_expects_an_assessment_a_plan_a_repair_and_a_delivery() -> None:
    keys = [s.key for s in expected_steps(shelter_household("light"))]
    assert keys == [
        "HouseholdRegistered",
        "NeedAssessed:shelter",
        "ShelterCaseOpened",
        "DamageAssessed",
        "RepairPlanned",
        "RepairCompleted",
        "AssistanceDelivered:shelter",
        "ShelterCaseClosed",
    ]


def test_a_heavy_damage_household_expects_a_referral_to_state_compensation() -> None:
    keys = [s.key for s in expected_steps(shelter_household("heavy"))]
    assert keys == [
        "HouseholdRegistered",
        "NeedAssessed:shelter",
        "ShelterCaseOpened",
        "DamageAssessed",
        "ReferralRequested:external.state_compensation",
    ]


def test_heavy_damage_without_consent_to_referral_expects_only_the_assessment() -> None:
    household = shelter_household("heavy", consents=frozenset({"registration"}))

    keys = [s.key for s in expected_steps(household)]

    assert keys[-2:] == ["ShelterCaseOpened", "DamageAssessed"]


def test_a_household_given_a_winterization_kit_expects_a_shelter_delivery() -> None:
    household = replace(shelter_household("heavy"), winterization_kit=True)

    assert [s.key for s in expected_steps(household)][-1] == "AssistanceDelivered:shelter"


def test_a_flow_completes_when_all_its_events_arrived() -> None:
    household_id = uuid4()
    events = Flowing(household_id).light_repair_flow()
    tracker = FlowTracker()
    flow = tracker.add_flow(
        shelter_household(), household_id=str(household_id), correlation_id=events[0].id
    )
    for event in events[:-1]:
        tracker.observe(event)
    assert [s.key for s in flow.missing()] == ["ShelterCaseClosed"]
    tracker.observe(events[-1])
    assert flow.complete and tracker.all_complete


def test_events_that_arrive_before_the_http_answer_are_matched_later() -> None:
    household_id = uuid4()
    events = Flowing(household_id).light_repair_flow()
    tracker = FlowTracker()
    for event in events:
        assert tracker.observe(event) is None
    flow = tracker.add_flow(
        shelter_household(), household_id=str(household_id), correlation_id=events[0].id
    )
    assert flow.complete


def test_a_redelivered_event_counts_once() -> None:
    household_id = uuid4()
    events = Flowing(household_id).light_repair_flow()
    tracker = FlowTracker()
    flow = tracker.add_flow(
        shelter_household(), household_id=str(household_id), correlation_id=events[0].id
    )
    for event in events + events[:2]:
        tracker.observe(event)
    assert len(flow.events) == len(events)
    assert tracker.duplicates == 2


def test_other_flows_are_ignored_but_strays_about_our_households_are_reported() -> None:
    ours, theirs = uuid4(), uuid4()
    tracker = FlowTracker()
    our_events = Flowing(ours).light_repair_flow()
    tracker.add_flow(shelter_household(), household_id=str(ours), correlation_id=our_events[0].id)
    for event in Flowing(theirs).light_repair_flow():
        tracker.observe(event)
    # The same household's repair, published under a brand-new correlation id:
    stray, _ = Flowing(ours).record(
        our_events[5].payload, source="/aidmesh/shelter", caused_by=None, at_ms=1000
    )
    tracker.observe(stray)
    assert tracker.flows[0].events == []
    assert [e.name for e in tracker.strays()] == ["RepairCompleted"]


def test_the_timeline_indents_each_event_under_its_cause() -> None:
    household_id = uuid4()
    events = Flowing(household_id).light_repair_flow()
    tracker = FlowTracker()
    flow = tracker.add_flow(
        shelter_household(), household_id=str(household_id), correlation_id=events[0].id
    )
    for event in reversed(events):
        tracker.observe(event)
    rows = timeline(flow)
    assert [(r.name, r.depth, r.offset_ms) for r in rows] == [
        ("HouseholdRegistered", 0, 0),
        ("NeedAssessed", 1, 2),
        ("ShelterCaseOpened", 2, 40),
        ("DamageAssessed", 3, 300),
        ("RepairPlanned", 4, 600),
        ("RepairCompleted", 5, 900),
        ("AssistanceDelivered", 6, 905),
        ("ShelterCaseClosed", 6, 906),
    ]
    assert "12 500.00 UAH" in rows[-2].detail
    assert "budget 12 500.00 UAH (cap 30 000.00 UAH), priority 42" in rows[4].detail
    assert rows[-1].detail.endswith("closed: repaired")


def test_summaries_count_events_money_and_oblasts() -> None:
    household_id = uuid4()
    events = Flowing(household_id).light_repair_flow()
    tracker = FlowTracker()
    tracker.add_flow(
        shelter_household(), household_id=str(household_id), correlation_id=events[0].id
    )
    for event in events:
        tracker.observe(event)
    counts = {(c.source, c.name): (c.count, c.expected) for c in counts_by_type(tracker.flows)}
    assert counts[("/aidmesh/shelter", "AssistanceDelivered")] == (1, 1)
    assert counts[("/aidmesh/registration", "NeedAssessed")] == (1, 1)
    [shelter] = assistance_by_sector(tracker.flows)
    assert (shelter.sector, shelter.value, shelter.persons_reached) == (
        "shelter",
        Decimal("12500.00"),
        2,
    )
    repairs = shelter_totals(tracker.flows)
    assert (repairs.repairs, repairs.repair_value, repairs.referred, repairs.kits) == (
        1,
        Decimal("12500.00"),
        0,
        0,
    )
    [kharkiv] = by_oblast(tracker.flows)
    assert (kharkiv.pcode, kharkiv.households, kharkiv.needs, kharkiv.deliveries) == (
        "UA63",
        1,
        1,
        1,
    )


def test_dead_letters_and_bad_records_are_read_without_failing() -> None:
    letter = read_record(
        topic="aidmesh.assessment.need.v1.dlq",
        partition=0,
        offset=7,
        headers=[
            ("ce_correlationid", b"c0ffee00-0000-0000-0000-000000000000"),
            ("ce_type", b"org.aidmesh.assessment.need.assessed.v1"),
            ("aidmesh_dlq_reason", b"no consent for referral"),
            ("aidmesh_dlq_service", b"protection"),
        ],
        value=b"{}",
    )
    assert isinstance(letter, DeadLetter) and letter.service == "protection"
    bad = read_record(
        topic="aidmesh.assessment.need.v1",
        partition=0,
        offset=8,
        headers=[("ce_id", b"x")],
        value=json.dumps({}).encode(),
    )
    assert isinstance(bad, Unreadable) and "missing CloudEvents headers" in bad.problem
