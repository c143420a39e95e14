"""The topic catalogue: every topic, what flows on it, who writes, who reads, how sensitive.

It is the single source for topic creation (`aidmesh infra bootstrap`), the JSON Schemas,
and the documentation integrators read.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from . import topics
from .base import EVENT_TYPES, Event
from .events.assessment import NeedAssessed
from .events.assistance import AssistanceDelivered
from .events.cash import (
    AssistanceOverlapFound,
    PayeeWithheld,
    PaymentConfirmed,
    PaymentCycleApproved,
    PaymentCycleOpened,
    PaymentFailed,
    PaymentInstructed,
)
from .events.health import VisitCompleted, VisitMissed, VisitScheduled
from .events.protection import ProtectionCaseClosed, ProtectionCaseOpened
from .events.referral import (
    ReferralAccepted,
    ReferralCompleted,
    ReferralDeclined,
    ReferralRequested,
)
from .events.registration import (
    ConsentRecorded,
    ConsentWithdrawn,
    DuplicateSuspected,
    HouseholdErased,
    HouseholdMerged,
    HouseholdRegistered,
    HouseholdUpdated,
    IntakeSubmitted,
)
from .events.shelter import (
    DamageAssessed,
    FacilityCaseOpened,
    RepairCompleted,
    RepairPlanned,
    ShelterCaseClosed,
    ShelterCaseOpened,
)

DAY_MS = 24 * 3600 * 1000


class Sensitivity(StrEnum):
    INTERNAL = "internal"  # ids, codes and counts: any AidMesh service or authorised partner
    RESTRICTED = "restricted"  # protection: readable by protection and audit only
    PERSONAL = "personal"  # raw intake with personal data: registration (and audit) only


@dataclass(frozen=True)
class Topic:
    name: str
    description: str
    event_types: tuple[type[Event], ...]
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    sensitivity: Sensitivity = Sensitivity.INTERNAL
    partitions: int = 6
    retention_ms: int = 30 * DAY_MS

    @property
    def dlq(self) -> str:
        return topics.dlq_topic(self.name)


CATALOGUE: tuple[Topic, ...] = (
    Topic(
        name=topics.REGISTRATION_INTAKE,
        description=(
            "Raw submissions from partner systems and KoboToolbox, before registration."
            " Holds personal data: only registration reads it."
        ),
        event_types=(IntakeSubmitted,),
        producers=("partners", "kobo", "registration"),
        consumers=("registration",),
        sensitivity=Sensitivity.PERSONAL,
    ),
    Topic(
        name=topics.HOUSEHOLD,
        description=(
            "Household lifecycle: registered, updated, merged, consent, erased. No personal data."
        ),
        event_types=(
            HouseholdRegistered,
            HouseholdUpdated,
            DuplicateSuspected,
            HouseholdMerged,
            ConsentRecorded,
            ConsentWithdrawn,
            HouseholdErased,
            PayeeWithheld,
            AssistanceOverlapFound,
        ),
        producers=("registration",),
        consumers=("shelter", "health", "protection", "cash", "audit"),
        retention_ms=-1,  # compaction-free full history: sectors rebuild projections from it
    ),
    Topic(
        name=topics.NEED,
        description="Needs assessed per sector with JIAF severity 1-5.",
        event_types=(NeedAssessed,),
        producers=("registration",),
        consumers=("shelter", "health", "protection", "cash", "audit"),
    ),
    Topic(
        name=topics.REFERRAL,
        description="Referrals between sectors and to external services, consent checked.",
        event_types=(ReferralRequested, ReferralAccepted, ReferralDeclined, ReferralCompleted),
        producers=("shelter", "health", "protection"),
        consumers=("shelter", "health", "protection", "audit"),
    ),
    Topic(
        name=topics.SHELTER_CASE,
        description=(
            "Shelter cases: opened, damage assessed, repair planned and completed, closed;"
            " collective-centre (facility) cases."
        ),
        event_types=(
            ShelterCaseOpened,
            DamageAssessed,
            RepairPlanned,
            RepairCompleted,
            ShelterCaseClosed,
            FacilityCaseOpened,
        ),
        producers=("shelter",),
        consumers=("audit",),
    ),
    Topic(
        name=topics.HEALTH_VISIT,
        description="Mobile medical team visits. Service codes only, never clinical data.",
        event_types=(VisitScheduled, VisitCompleted, VisitMissed),
        producers=("health",),
        consumers=("audit",),
    ),
    Topic(
        name=topics.PROTECTION_CASE,
        description="Protection cases as pseudonymous references and coarse codes. Restricted.",
        event_types=(ProtectionCaseOpened, ProtectionCaseClosed),
        producers=("protection",),
        consumers=("audit",),
        sensitivity=Sensitivity.RESTRICTED,
    ),
    Topic(
        name=topics.ASSISTANCE_DELIVERED,
        description="Assistance delivered by every sector: the basis of 5W and donor reports.",
        event_types=(AssistanceDelivered,),
        producers=("shelter", "health", "protection", "cash"),
        consumers=("audit", "reporting", "cash"),
        retention_ms=-1,
    ),
    Topic(
        name=topics.CASH_PAYMENT,
        description=(
            "Multi-purpose cash: payment cycles opened and approved, payments instructed,"
            " confirmed or failed. Ids and amounts only: the payee's details are only in the"
            " provider's file, written by registration."
        ),
        event_types=(
            PaymentCycleOpened,
            PaymentCycleApproved,
            PaymentInstructed,
            PaymentConfirmed,
            PaymentFailed,
        ),
        producers=("cash",),
        consumers=("registration", "audit"),
    ),
)

BY_NAME: dict[str, Topic] = {t.name: t for t in CATALOGUE}


def topic(name: str) -> Topic:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"topic {name!r} is not in the catalogue") from None


def check_catalogue() -> list[str]:
    """Inconsistencies between the registry and the catalogue (empty when all is well)."""
    problems = []
    listed = {t for entry in CATALOGUE for t in entry.event_types}
    for type_name, model in EVENT_TYPES.items():
        if model not in listed:
            problems.append(f"{type_name} is registered but listed on no topic")
        if model.topic not in BY_NAME:
            problems.append(f"{type_name} names topic {model.topic} that is not in the catalogue")
    for entry in CATALOGUE:
        for model in entry.event_types:
            if model.topic != entry.name:
                problems.append(f"{model.event_type} is listed on {entry.name}, not {model.topic}")
    return problems
