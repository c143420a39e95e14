"""What the demo expects to see on the broker, what it saw, and the summary of it.

Pure: records come in as (topic, partition, offset, headers, value); nothing here talks to
Kafka or HTTP, so all of it is unit-testable. A *flow* is everything that happens because
one household was registered: every event of it carries the registration's correlation id.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from aidmesh_contracts.base import Event
from aidmesh_contracts.envelope import Envelope, EnvelopeError, PayloadError, decode
from aidmesh_contracts.events.assessment import NeedAssessed
from aidmesh_contracts.events.assistance import AssistanceDelivered
from aidmesh_contracts.events.health import VisitCompleted, VisitScheduled
from aidmesh_contracts.events.protection import ProtectionCaseOpened
from aidmesh_contracts.events.referral import ReferralRequested
from aidmesh_contracts.events.registration import HouseholdRegistered
from aidmesh_contracts.events.shelter import (
    DamageAssessed,
    RepairCompleted,
    RepairPlanned,
    ShelterCaseClosed,
    ShelterCaseOpened,
)

from .demo_data import DemoHousehold

Headers = Sequence[tuple[str, bytes | None]]

#: Cap on records kept while their correlation id is not (yet) known to be the demo's.
MAX_PENDING = 200_000


@dataclass(frozen=True)
class Step:
    """One event a flow must produce; `key` is the event name, qualified by sector if needed."""

    key: str
    service: str  # the service expected to publish it

    @property
    def event(self) -> str:
        return self.key.split(":", 1)[0]

    @property
    def label(self) -> str:
        name, _, sector = self.key.partition(":")
        return f"{name} ({sector})" if sector else name


REGISTERED = Step("HouseholdRegistered", "registration")
SHELTER_OPENED = Step("ShelterCaseOpened", "shelter")
DAMAGE_ASSESSED = Step("DamageAssessed", "shelter")  # reported by the demo's field engineer
COMPENSATION_REFERRAL = Step("ReferralRequested:external.state_compensation", "shelter")
REPAIR_PLANNED = Step("RepairPlanned", "shelter")
REPAIRED = Step("RepairCompleted", "shelter")
SHELTER_DELIVERED = Step("AssistanceDelivered:shelter", "shelter")
SHELTER_CLOSED = Step("ShelterCaseClosed", "shelter")
VISIT_SCHEDULED = Step("VisitScheduled", "health")
VISITED = Step("VisitCompleted", "health")  # reported by the demo acting as the team
HEALTH_DELIVERED = Step("AssistanceDelivered:health", "health")
PROTECTION_OPENED = Step("ProtectionCaseOpened", "protection")


def need_step(sector: str) -> Step:
    return Step(f"NeedAssessed:{sector}", "registration")


#: Display order of steps (the order a flow goes through them).
STEP_ORDER: tuple[Step, ...] = (
    REGISTERED,
    need_step("shelter"),
    need_step("health"),
    need_step("protection"),
    SHELTER_OPENED,
    DAMAGE_ASSESSED,
    COMPENSATION_REFERRAL,
    REPAIR_PLANNED,
    REPAIRED,
    SHELTER_DELIVERED,
    SHELTER_CLOSED,
    VISIT_SCHEDULED,
    VISITED,
    HEALTH_DELIVERED,
    PROTECTION_OPENED,
)


def expected_steps(household: DemoHousehold) -> tuple[Step, ...]:
    """The events that registering this household must lead to, across all services."""
    steps = [REGISTERED, *(need_step(n.sector) for n in household.needs)]
    if "shelter" in household.sectors:
        steps += [SHELTER_OPENED, DAMAGE_ASSESSED]  # the field engineer assesses every case
        if household.repair is not None:  # light or medium: planned, repaired, closed
            steps += [REPAIR_PLANNED, REPAIRED, SHELTER_DELIVERED, SHELTER_CLOSED]
        elif "referral" in household.consents:  # heavy: to state compensation, case open
            steps.append(COMPENSATION_REFERRAL)
        # heavy damage without consent to referral stays open, awaiting that consent
    if household.winterization_kit and SHELTER_DELIVERED not in steps:
        steps.append(SHELTER_DELIVERED)  # the coordinator's winterization kit
    if "health" in household.sectors:
        steps += [VISIT_SCHEDULED, VISITED, HEALTH_DELIVERED]
    if "protection" in household.sectors:
        steps.append(PROTECTION_OPENED)
    return tuple(steps)


# ---- records ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SeenEvent:
    """An event read from the broker: its CloudEvents attributes and its decoded payload."""

    envelope: Envelope
    payload: Event
    topic: str
    partition: int
    offset: int

    @property
    def id(self) -> str:
        return str(self.envelope.id)

    @property
    def name(self) -> str:
        return type(self.payload).__name__

    @property
    def key(self) -> str:
        sector = getattr(self.payload, "sector", None)
        if isinstance(self.payload, NeedAssessed | AssistanceDelivered) and sector is not None:
            return f"{self.name}:{sector.value}"
        if isinstance(self.payload, ReferralRequested):
            return f"{self.name}:{self.payload.to}"
        return self.name

    @property
    def correlation_id(self) -> str:
        return str(self.envelope.correlationid)

    @property
    def causation_id(self) -> str | None:
        return str(self.envelope.causationid) if self.envelope.causationid else None

    @property
    def time(self) -> datetime:
        return self.envelope.time

    @property
    def source(self) -> str:
        return self.envelope.source


@dataclass(frozen=True)
class DeadLetter:
    """A record of the demo's flows that a service dead-lettered, and why."""

    topic: str
    event_type: str
    correlation_id: str
    subject: str | None
    service: str
    reason: str


@dataclass(frozen=True)
class Unreadable:
    """A record on a watched topic that is not a valid AidMesh event."""

    topic: str
    partition: int
    offset: int
    correlation_id: str | None
    problem: str


def header(headers: Headers, name: str) -> str | None:
    for key, value in headers:
        if key == name and value is not None:
            return value.decode("utf-8", errors="replace")
    return None


def read_record(
    *, topic: str, partition: int, offset: int, headers: Headers, value: bytes | None
) -> SeenEvent | DeadLetter | Unreadable:
    """Turn one Kafka record into what the demo tracks."""
    if topic.endswith(".dlq"):
        return DeadLetter(
            topic=header(headers, "aidmesh_dlq_topic") or topic.removesuffix(".dlq"),
            event_type=header(headers, "ce_type") or "?",
            correlation_id=header(headers, "ce_correlationid") or header(headers, "ce_id") or "",
            subject=header(headers, "ce_subject"),
            service=header(headers, "aidmesh_dlq_service") or "?",
            reason=header(headers, "aidmesh_dlq_reason") or "?",
        )
    try:
        envelope = Envelope.from_headers(headers)
        payload = decode(envelope, value)
    except (EnvelopeError, PayloadError) as exc:
        return Unreadable(
            topic=topic,
            partition=partition,
            offset=offset,
            correlation_id=header(headers, "ce_correlationid"),
            problem=str(exc),
        )
    return SeenEvent(envelope, payload, topic, partition, offset)


# ---- flows -----------------------------------------------------------------------------


@dataclass
class Flow:
    household: DemoHousehold
    household_id: str
    correlation_id: str
    expected: tuple[Step, ...]
    events: list[SeenEvent] = field(default_factory=list)

    @property
    def short_id(self) -> str:
        return short(self.household_id)

    def seen(self) -> Counter[str]:
        return Counter(e.key for e in self.events)

    def missing(self) -> list[Step]:
        seen = self.seen()
        return [s for s in self.expected if seen[s.key] < 1]

    @property
    def complete(self) -> bool:
        return not self.missing()

    def registered(self) -> SeenEvent | None:
        return next((e for e in self.events if isinstance(e.payload, HouseholdRegistered)), None)


class FlowTracker:
    """Matches events to the demo's flows by correlation id, whatever order things happen in.

    Events may arrive before registration's HTTP answer tells us their correlation id, so
    unknown ones wait in `pending` and are matched when their flow is added.
    """

    def __init__(self) -> None:
        self.flows: list[Flow] = []
        self._by_correlation: dict[str, Flow] = {}
        self._by_household: dict[str, Flow] = {}
        self._seen_ids: set[str] = set()
        self._pending: dict[str, list[SeenEvent]] = defaultdict(list)
        self._pending_count = 0
        self.duplicates = 0
        self.dead_letters: list[DeadLetter] = []
        self.unreadable: list[Unreadable] = []
        self._other_dead_letters: list[DeadLetter] = []
        self._other_unreadable: list[Unreadable] = []

    def add_flow(self, household: DemoHousehold, *, household_id: str, correlation_id: str) -> Flow:
        flow = Flow(household, household_id, correlation_id, expected_steps(household))
        self.flows.append(flow)
        self._by_correlation[correlation_id] = flow
        self._by_household[household_id] = flow
        for event in self._pending.pop(correlation_id, []):
            self._pending_count -= 1
            flow.events.append(event)
        self.dead_letters += [
            d for d in self._other_dead_letters if d.correlation_id == correlation_id
        ]
        self.unreadable += [u for u in self._other_unreadable if u.correlation_id == correlation_id]
        return flow

    def observe(self, item: SeenEvent | DeadLetter | Unreadable) -> Flow | None:
        """Take one record; return the flow it belongs to, if it is the demo's (and new)."""
        if isinstance(item, DeadLetter):
            if item.correlation_id in self._by_correlation:
                self.dead_letters.append(item)
            elif len(self._other_dead_letters) < MAX_PENDING:
                self._other_dead_letters.append(item)
            return None
        if isinstance(item, Unreadable):
            if item.correlation_id in self._by_correlation:
                self.unreadable.append(item)
            elif len(self._other_unreadable) < MAX_PENDING:
                self._other_unreadable.append(item)
            return None
        if item.id in self._seen_ids:
            # At-least-once delivery: a re-sent event counts once (and only ours are counted).
            self.duplicates += item.correlation_id in self._by_correlation
            return None
        self._seen_ids.add(item.id)
        flow = self._by_correlation.get(item.correlation_id)
        if flow is None:
            if self._pending_count < MAX_PENDING:
                self._pending[item.correlation_id].append(item)
                self._pending_count += 1
            return None
        flow.events.append(item)
        return flow

    def flow_of_household(self, household_id: str) -> Flow | None:
        return self._by_household.get(household_id)

    @property
    def complete(self) -> int:
        return sum(1 for f in self.flows if f.complete)

    @property
    def all_complete(self) -> bool:
        return all(f.complete for f in self.flows)

    def progress(self) -> list[tuple[Step, int, int]]:
        """(step, flows that have it, flows that expect it), in flow order."""
        expected: Counter[str] = Counter()
        done: Counter[str] = Counter()
        for flow in self.flows:
            seen = flow.seen()
            for step in flow.expected:
                expected[step.key] += 1
                done[step.key] += seen[step.key] >= 1
        return [(s, done[s.key], expected[s.key]) for s in STEP_ORDER if expected[s.key]]

    @property
    def events_seen(self) -> int:
        return sum(len(f.events) for f in self.flows)

    def missing_by_step(self) -> list[tuple[Step, list[Flow]]]:
        missing: dict[str, list[Flow]] = defaultdict(list)
        for flow in self.flows:
            for step in flow.missing():
                missing[step.key].append(flow)
        return [(s, missing[s.key]) for s in STEP_ORDER if missing.get(s.key)]

    def strays(self) -> list[SeenEvent]:
        """Events about the demo's households that carry another flow's correlation id.

        A service that starts a new correlation id (instead of carrying the one of the
        event or request that caused its work) breaks the flow; these make that visible.
        """
        return [
            event
            for events in self._pending.values()
            for event in events
            if event.envelope.subject in self._by_household
        ]


def short(uuid_text: str) -> str:
    return uuid_text[:8]


# ---- summary ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TypeCount:
    source: str
    name: str
    count: int
    expected: int | None


@dataclass
class SectorTotals:
    sector: str
    deliveries: int = 0
    households: set[str] = field(default_factory=set)
    value: Decimal = Decimal("0.00")
    persons_reached: int = 0


@dataclass
class OblastTotals:
    pcode: str
    households: int = 0
    persons: int = 0
    needs: int = 0
    deliveries: int = 0
    value: Decimal = Decimal("0.00")


@dataclass(frozen=True)
class TimelineRow:
    offset_ms: float
    source: str
    name: str
    depth: int
    event_id: str
    detail: str


def counts_by_type(flows: Iterable[Flow]) -> list[TypeCount]:
    """Events seen per (ce_source, type), next to how many the flows expect from there."""
    seen: Counter[tuple[str, str]] = Counter()
    expected: Counter[tuple[str, str]] = Counter()
    for flow in flows:
        for event in flow.events:
            seen[(event.source, event.name)] += 1
        for step in flow.expected:
            expected[(source_of(step.service), step.event)] += 1
    order = {(source_of(s.service), s.event): i for i, s in reversed(list(enumerate(STEP_ORDER)))}
    rows = [
        TypeCount(source, name, seen[(source, name)], expected.get((source, name)))
        for source, name in seen.keys() | expected.keys()
    ]
    return sorted(rows, key=lambda r: (order.get((r.source, r.name), len(order)), r.source, r.name))


def source_of(service: str) -> str:
    """The CloudEvents source of an AidMesh service's events."""
    return f"/aidmesh/{service}"


@dataclass
class ShelterTotals:
    """What shelter did for the demo's households, from the events of their flows."""

    repairs: int = 0
    repair_value: Decimal = Decimal("0.00")
    referred: int = 0  # heavy damage referred to another programme
    kits: int = 0


def shelter_totals(flows: Iterable[Flow]) -> ShelterTotals:
    totals = ShelterTotals()
    for flow in flows:
        for event in flow.events:
            payload = event.payload
            if isinstance(payload, RepairCompleted):
                totals.repairs += 1
                totals.repair_value += payload.value.amount
            elif isinstance(payload, ReferralRequested) and payload.from_sector.value == "shelter":
                totals.referred += 1
            elif (
                isinstance(payload, AssistanceDelivered)
                and payload.activity == "shelter.winterization_kit"
            ):
                totals.kits += 1
    return totals


def assistance_by_sector(flows: Iterable[Flow]) -> list[SectorTotals]:
    totals: dict[str, SectorTotals] = {}
    for flow in flows:
        for event in flow.events:
            payload = event.payload
            if not isinstance(payload, AssistanceDelivered):
                continue
            row = totals.setdefault(payload.sector.value, SectorTotals(payload.sector.value))
            row.deliveries += 1
            row.households.add(flow.household_id)
            row.persons_reached += payload.persons_reached
            if payload.value is not None:
                row.value += payload.value.amount
    return sorted(totals.values(), key=lambda r: r.sector)


def by_oblast(flows: Iterable[Flow]) -> list[OblastTotals]:
    """Households and needs where registration placed them, deliveries where they happened
    (which should be the same oblast: see `deliveries_elsewhere`)."""
    totals: dict[str, OblastTotals] = {}

    def row(pcode: str) -> OblastTotals:
        return totals.setdefault(pcode, OblastTotals(pcode))

    for flow in flows:
        for event in flow.events:
            payload = event.payload
            if isinstance(payload, HouseholdRegistered):
                row(payload.location.adm1_pcode).households += 1
                row(payload.location.adm1_pcode).persons += payload.size
            elif isinstance(payload, NeedAssessed):
                row(flow.household.adm1_pcode).needs += 1
            elif isinstance(payload, AssistanceDelivered):
                target = row(payload.location.adm1_pcode)
                target.deliveries += 1
                if payload.value is not None:
                    target.value += payload.value.amount
    return sorted(totals.values(), key=lambda r: (-r.households, r.pcode))


def deliveries_elsewhere(flows: Iterable[Flow]) -> list[SeenEvent]:
    """Deliveries reported in another oblast than the one the household registered in."""
    elsewhere = []
    for flow in flows:
        registered = flow.registered()
        if registered is None or not isinstance(registered.payload, HouseholdRegistered):
            continue
        home = registered.payload.location.adm1_pcode
        elsewhere += [
            e
            for e in flow.events
            if isinstance(e.payload, AssistanceDelivered) and e.payload.location.adm1_pcode != home
        ]
    return elsewhere


def timeline(flow: Flow) -> list[TimelineRow]:
    """Every event of a flow in ce_time order, with its depth in the causation tree."""
    by_id = {e.id: e for e in flow.events}
    registered = flow.registered()
    start = registered.time if registered else min((e.time for e in flow.events), default=None)

    def depth(event: SeenEvent) -> int:
        level, current, visited = 0, event, {event.id}
        while current.causation_id and current.causation_id in by_id:
            current = by_id[current.causation_id]
            if current.id in visited:  # a cycle would be a bug elsewhere; don't loop on it
                break
            visited.add(current.id)
            level += 1
        return level

    rows = []
    for event in sorted(flow.events, key=lambda e: (e.time, e.offset)):
        offset = (event.time - start).total_seconds() * 1000 if start else 0.0
        rows.append(
            TimelineRow(
                offset_ms=offset,
                source=event.source,
                name=event.name,
                depth=depth(event),
                event_id=short(event.id),
                detail=describe(event),
            )
        )
    return rows


def describe(event: SeenEvent) -> str:
    """A one-line, personal-data-free description of an event's payload."""
    p = event.payload
    if isinstance(p, HouseholdRegistered):
        vulnerabilities = ", ".join(sorted(v.value for v in p.vulnerabilities)) or "-"
        return (
            f"{p.location.adm1_pcode} size={p.size} {p.displacement_status.value} "
            f"via {p.channel.value} vuln={vulnerabilities}"
        )
    if isinstance(p, NeedAssessed):
        details = ""
        if p.details is not None:
            codes = p.details.model_dump(exclude={"kind"}, exclude_none=True)
            details = " " + " ".join(
                f"{k}={', '.join(sorted(v)) if isinstance(v, frozenset | set | list) else v}"
                for k, v in codes.items()
            )
        return f"{p.sector.value} severity={p.severity}{details}"
    if isinstance(p, ShelterCaseOpened):
        return f"case {short(str(p.case_id))} damage={p.damage_level.value} severity={p.severity}"
    if isinstance(p, DamageAssessed):
        return (
            f"{p.damage_level.value} damage, estimate {uah(p.estimated_cost.amount)} "
            f"({p.boq_lines} BoQ lines) by {p.assessed_by}"
        )
    if isinstance(p, RepairPlanned):
        return (
            f"{p.category.value} repair, {p.modality.value}, budget {uah(p.budget.amount)} "
            f"(cap {uah(p.cap.amount)}), priority {p.priority}"
        )
    if isinstance(p, ShelterCaseClosed):
        return f"case {short(str(p.case_id))} closed: {p.reason_code}"
    if isinstance(p, ReferralRequested):
        return (
            f"{p.from_sector.value} → {p.to}: {p.reason_code}, {p.urgency.value}, "
            f"consent {p.consent_purpose.value} checked"
        )
    if isinstance(p, RepairCompleted):
        return f"{p.category.value} repair, {p.modality.value}, {uah(p.value.amount)}"
    if isinstance(p, AssistanceDelivered):
        value = f", {uah(p.value.amount)}" if p.value is not None else ""
        persons = f"{p.persons_reached} person{'' if p.persons_reached == 1 else 's'}"
        return f"{p.activity} {p.modality.value}, {persons}{value}"
    if isinstance(p, VisitScheduled):
        services = ", ".join(sorted(p.services_planned))
        return f"team {p.team_code} on {p.scheduled_for}: {services}; priority {p.priority}"
    if isinstance(p, VisitCompleted):
        services = ", ".join(sorted(p.services_delivered))
        return f"team {p.team_code}: {services}; {p.persons_seen} seen"
    if isinstance(p, ProtectionCaseOpened):
        return f"{p.case_ref} from {p.source.value}, severity={p.severity}"
    return ""


def uah(amount: Decimal) -> str:
    return f"{amount:,.2f} UAH".replace(",", " ")


def sample_flows(flows: Sequence[Flow], k: int = 3) -> list[Flow]:
    """A few flows that together show the most: complete ones first, different sector mixes."""
    ranked = sorted(
        flows,
        key=lambda f: (
            not f.complete,
            -len(f.household.sectors),
            -len(f.events),
            f.household.index,
        ),
    )
    picked: list[Flow] = []
    shapes: set[tuple[frozenset[str], str | None]] = set()
    for flow in ranked:
        shape = (flow.household.sectors, flow.household.damage_level)
        if shape not in shapes:
            picked.append(flow)
            shapes.add(shape)
        if len(picked) == k:
            return picked
    return picked + [f for f in ranked if f not in picked][: k - len(picked)]


def flow_latencies_ms(flows: Iterable[Flow]) -> list[float]:
    """For each complete flow: time from registration to its last event."""
    latencies = []
    for flow in flows:
        registered = flow.registered()
        if flow.complete and registered is not None:
            last = max(e.time for e in flow.events)
            latencies.append((last - registered.time).total_seconds() * 1000)
    return latencies


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None
