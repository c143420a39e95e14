"""AidMesh contracts: the one shared package of event models, envelope and topic catalogue."""

from .base import EVENT_TYPES, Event
from .catalogue import CATALOGUE, Topic, topic
from .common import Location, Money, Sector
from .envelope import Envelope, EnvelopeError, PayloadError, UnknownEventType, decode, encode
from .events.assessment import (
    DamageLevel,
    HealthNeedDetails,
    NeedAssessed,
    ProtectionNeedDetails,
    ShelterNeedDetails,
    Tenure,
)
from .events.assistance import AssistanceDelivered, Modality
from .events.health import VisitCompleted
from .events.protection import CaseSource, ProtectionCaseOpened
from .events.registration import (
    Channel,
    Composition,
    ConsentPurpose,
    DisplacementStatus,
    HouseholdRegistered,
    Vulnerability,
)
from .events.shelter import RepairCategory, RepairCompleted, ShelterCaseOpened

__all__ = [
    "CATALOGUE",
    "EVENT_TYPES",
    "AssistanceDelivered",
    "CaseSource",
    "Channel",
    "Composition",
    "ConsentPurpose",
    "DamageLevel",
    "DisplacementStatus",
    "Envelope",
    "EnvelopeError",
    "Event",
    "HealthNeedDetails",
    "HouseholdRegistered",
    "Location",
    "Modality",
    "Money",
    "NeedAssessed",
    "PayloadError",
    "ProtectionCaseOpened",
    "ProtectionNeedDetails",
    "RepairCategory",
    "RepairCompleted",
    "Sector",
    "ShelterCaseOpened",
    "ShelterNeedDetails",
    "Tenure",
    "Topic",
    "UnknownEventType",
    "VisitCompleted",
    "Vulnerability",
    "decode",
    "encode",
    "topic",
]
