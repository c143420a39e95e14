"""One valid example payload per event type, as it travels on the wire (the JSON value).

Integrators start from these; the tests validate every one against its model and its
committed JSON Schema, and fail when a registered type has no example (or an example
names a type nobody registered). The story they tell is one household in Kharkiv oblast:
registered at a field office, shelter need assessed, a shelter case opened, a light repair
done, a winterization kit delivered, a mobile medical team visit, and a protection case.

Everything is ids, codes, counts and flags: no example may ever carry personal data.
"""

from __future__ import annotations

import copy
from typing import Any

# One household and the ids that follow it through its flow.
_HOUSEHOLD_ID = "3f2b8c1e-6d4a-4e7b-9a15-2c8e5f0d7b31"
_ASSESSMENT_ID = "a6c1d9e2-47b8-4f03-8e5a-91d2c4b7e680"
_SHELTER_CASE_ID = "5e8a2f71-c3b4-4d96-a0e7-6b1f9d2c8a45"

# Kharkiv oblast, Kharkivskyi raion, one of its hromadas (OCHA COD-AB style P-codes).
_KHARKIV = {"adm1_pcode": "UA63", "adm2_pcode": "UA6312", "adm3_pcode": "UA6312001"}

EXAMPLES: dict[str, dict[str, Any]] = {
    "org.aidmesh.registration.household.registered.v1": {
        "household_id": _HOUSEHOLD_ID,
        "registered_at": "2026-01-12T10:24:00+02:00",
        "channel": "field_office",
        "partner_org": "DRC",
        "location": dict(_KHARKIV),
        "displacement_status": "idp",
        "size": 4,
        "composition": {
            "female_0_17": 1,
            "female_18_59": 1,
            "female_60_plus": 1,
            "male_0_17": 1,
            "male_18_59": 0,
            "male_60_plus": 0,
        },
        "vulnerabilities": ["female_headed", "chronic_illness"],
        "consents": ["registration", "data_sharing", "referral"],
    },
    "org.aidmesh.assessment.need.assessed.v1": {
        "assessment_id": _ASSESSMENT_ID,
        "household_id": _HOUSEHOLD_ID,
        "sector": "shelter",
        "severity": 4,
        "assessed_at": "2026-01-14T13:05:00+02:00",
        "assessed_by": "IOM-KH-03",
        "details": {
            "kind": "shelter",
            "damage_level": "medium",
            "tenure": "owner",
            "heating_available": False,
        },
    },
    "org.aidmesh.shelter.case.opened.v1": {
        "case_id": _SHELTER_CASE_ID,
        "household_id": _HOUSEHOLD_ID,
        "need_assessment_id": _ASSESSMENT_ID,
        "severity": 4,
        "damage_level": "medium",
        "location": dict(_KHARKIV),
        "opened_at": "2026-01-14T13:05:02+02:00",
    },
    "org.aidmesh.shelter.repair.completed.v1": {
        "case_id": _SHELTER_CASE_ID,
        "household_id": _HOUSEHOLD_ID,
        "category": "light",
        "modality": "in_kind",
        "value": {"amount": "27850.00", "currency": "UAH"},
        "completed_at": "2026-02-03T16:40:00+02:00",
    },
    "org.aidmesh.assistance.assistance.delivered.v1": {
        "delivery_id": "c4e7a1b2-9d38-4f6e-b215-7a0d3e9c5f12",
        "household_id": _HOUSEHOLD_ID,
        "facility_id": None,
        "sector": "shelter",
        "activity": "shelter.winterization_kit",
        "modality": "in_kind",
        "quantity": "1",
        "unit": "kit",
        "value": {"amount": "4200.00", "currency": "UAH"},
        "persons_reached": 4,
        "partner_org": "NRC",
        "location": dict(_KHARKIV),
        "delivered_at": "2026-01-20T11:15:00+02:00",
    },
    "org.aidmesh.health.visit.completed.v1": {
        "visit_id": "e1b5c7d3-2a94-4c8f-b6e0-3d7a9f1c2b58",
        "household_id": _HOUSEHOLD_ID,
        "team_code": "MMT-KH-01",
        "services_delivered": ["primary_consultation", "ncd_followup"],
        "persons_seen": 2,
        "location": dict(_KHARKIV),
        "completed_at": "2026-01-22T09:50:00+02:00",
    },
    "org.aidmesh.protection.case.opened.v1": {
        "case_ref": "PRT-7K3M9Q2XWD",
        "household_id": _HOUSEHOLD_ID,
        "source": "need_assessment",
        "severity": 3,
        "concern_codes": ["psychosocial_distress", "civil_documentation"],
        "opened_at": "2026-01-15T15:30:00+02:00",
    },
}


def example(event_type: str) -> dict[str, Any]:
    """A fresh deep copy of the example of one event type, safe to modify."""
    return copy.deepcopy(EXAMPLES[event_type])
