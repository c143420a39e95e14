"""One valid example payload per event type, as it travels on the wire (the JSON value).

Integrators start from these; the tests validate every one against its model and its
committed JSON Schema, and fail when a registered type has no example (or an example
names a type nobody registered). The story they tell is one household in Kharkiv oblast:
registered at a field office, shelter need assessed, a shelter case opened, a light repair
done, a winterization kit delivered, a mobile medical team visit, a protection case, and
three months of multi-purpose cash.

Everything is ids, codes, counts and flags: no example may ever carry personal data.
"""

from __future__ import annotations

import copy
from typing import Any

# One household and the ids that follow it through its flow.
_HOUSEHOLD_ID = "3f2b8c1e-6d4a-4e7b-9a15-2c8e5f0d7b31"
_ASSESSMENT_ID = "a6c1d9e2-47b8-4f03-8e5a-91d2c4b7e680"
_SHELTER_CASE_ID = "5e8a2f71-c3b4-4d96-a0e7-6b1f9d2c8a45"
_DUPLICATE_ID = "9a4c7e2b-5d18-4f63-b0a9-e1c6d3f8b247"
_REFERRAL_ID = "b2d9f4a7-6e31-4c85-9a1b-7f3e5c0d2a64"
_CYCLE_ID = "d7f3a2c9-1b64-4e58-8c0d-5a9e2f7b3c16"
_PAYMENT_ID = "f0a6c3e8-7d21-4b95-a4f7-2e8b1d6c9a03"

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
    "org.aidmesh.registration.household.updated.v1": {
        "household_id": _HOUSEHOLD_ID,
        "updated_at": "2026-01-19T09:02:00+02:00",
        "channel": "kobo",
        "partner_org": "DRC",
        "changed": ["size", "composition", "vulnerabilities"],
        "location": dict(_KHARKIV),
        "displacement_status": "idp",
        "size": 5,
        "composition": {
            "female_0_17": 1,
            "female_18_59": 1,
            "female_60_plus": 1,
            "male_0_17": 2,
            "male_18_59": 0,
            "male_60_plus": 0,
        },
        "vulnerabilities": ["female_headed", "chronic_illness", "large_family"],
    },
    "org.aidmesh.registration.duplicate.suspected.v1": {
        "suspicion_id": "0b9e4d2a-71c5-4a38-9f06-e2d8b3c1a754",
        "household_id": _DUPLICATE_ID,
        "candidate_household_id": _HOUSEHOLD_ID,
        "score": 0.93,
        "reasons": ["similar_name", "swapped_day_month", "same_location"],
        "detected_at": "2026-01-16T12:00:04+02:00",
    },
    "org.aidmesh.registration.household.merged.v1": {
        "household_id": _HOUSEHOLD_ID,
        "merged_household_id": _DUPLICATE_ID,
        "suspicion_id": "0b9e4d2a-71c5-4a38-9f06-e2d8b3c1a754",
        "decided_by": "IOM-KH-DATA",
        "merged_at": "2026-01-17T10:30:00+02:00",
    },
    "org.aidmesh.registration.consent.recorded.v1": {
        "consent_id": "8d3f6a1c-2b7e-4c59-a0d4-5e9b1f7c3a26",
        "household_id": _HOUSEHOLD_ID,
        "purpose": "referral",
        "recorded_by": "IOM-KH-03",
        "recorded_at": "2026-01-12T10:26:00+02:00",
    },
    "org.aidmesh.registration.consent.withdrawn.v1": {
        "consent_id": "8d3f6a1c-2b7e-4c59-a0d4-5e9b1f7c3a26",
        "household_id": _HOUSEHOLD_ID,
        "purpose": "referral",
        "recorded_by": "IOM-HOTLINE",
        "withdrawn_at": "2026-03-02T14:11:00+02:00",
    },
    "org.aidmesh.registration.household.erased.v1": {
        "household_id": _HOUSEHOLD_ID,
        "merged_household_ids": [_DUPLICATE_ID],
        "reason_code": "data_subject_request",
        "requested_by": "IOM-KH-DATA",
        "erased_at": "2026-06-30T09:00:00+03:00",
    },
    "org.aidmesh.registration.intake.submitted.v1": {
        "submission_id": "uuid:5b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e",
        "replaces": None,
        "source": "kobo",
        "partner_org": "DRC",
        "form_id": "aXkP3mQ7rT9sVw2yZ4bC6d",
        "submitted_at": "2026-01-12T10:20:00+02:00",
        "format": "kobo_json",
        # Kobo's `group/question` keys; a real submission carries names and phones here,
        # which is why only registration reads this topic. The example keeps them out.
        "answers": {
            "_uuid": "5b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e",
            "meta/instanceID": "uuid:5b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e",
            "location/adm1": "UA63",
            "household/size": "4",
        },
    },
    "org.aidmesh.referral.referral.requested.v1": {
        "referral_id": _REFERRAL_ID,
        "household_id": _HOUSEHOLD_ID,
        "from_sector": "health",
        "to": "protection",
        "reason_code": "mhpss_specialised",
        "urgency": "priority",
        "consent_purpose": "referral",
        "requested_by": "MMT-KH-01",
        "requested_at": "2026-01-22T09:55:00+02:00",
    },
    "org.aidmesh.referral.referral.accepted.v1": {
        "referral_id": _REFERRAL_ID,
        "household_id": _HOUSEHOLD_ID,
        "accepted_by": "protection",
        "accepted_at": "2026-01-22T11:00:00+02:00",
    },
    "org.aidmesh.referral.referral.declined.v1": {
        "referral_id": _REFERRAL_ID,
        "household_id": _HOUSEHOLD_ID,
        "declined_by": "protection",
        "reason_code": "consent_withdrawn",
        "declined_at": "2026-03-02T14:12:00+02:00",
    },
    "org.aidmesh.referral.referral.completed.v1": {
        "referral_id": _REFERRAL_ID,
        "household_id": _HOUSEHOLD_ID,
        "completed_by": "protection",
        "outcome_code": "service_provided",
        "completed_at": "2026-02-10T16:00:00+02:00",
    },
    "org.aidmesh.shelter.damage.assessed.v1": {
        "case_id": _SHELTER_CASE_ID,
        "household_id": _HOUSEHOLD_ID,
        "damage_level": "light",
        "estimated_cost": {"amount": "27850.00", "currency": "UAH"},
        "boq_lines": 6,
        "assessed_by": "IOM-KH-ENG-02",
        "assessed_at": "2026-01-16T11:20:00+02:00",
    },
    "org.aidmesh.shelter.repair.planned.v1": {
        "case_id": _SHELTER_CASE_ID,
        "household_id": _HOUSEHOLD_ID,
        "category": "light",
        "modality": "in_kind",
        "budget": {"amount": "27850.00", "currency": "UAH"},
        "cap": {"amount": "30000.00", "currency": "UAH"},
        "priority": 2,
        "planned_at": "2026-01-16T11:20:01+02:00",
    },
    "org.aidmesh.shelter.case.closed.v1": {
        "case_id": _SHELTER_CASE_ID,
        "household_id": _HOUSEHOLD_ID,
        "reason_code": "repaired",
        "closed_at": "2026-02-03T16:40:01+02:00",
    },
    "org.aidmesh.shelter.facility.opened.v1": {
        "case_id": "7c2e9a14-5b3d-4f81-96a0-d4e8b1c7f392",
        "facility_id": "f3a8d5c2-1e47-4b96-8c0a-2d7e9b4f6a13",
        "capacity": 120,
        "location": dict(_KHARKIV),
        "opened_at": "2026-01-10T09:00:00+02:00",
    },
    "org.aidmesh.health.visit.scheduled.v1": {
        "visit_id": "e1b5c7d3-2a94-4c8f-b6e0-3d7a9f1c2b58",
        "household_id": _HOUSEHOLD_ID,
        "team_code": "MMT-KH-01",
        "scheduled_for": "2026-01-22",
        "services_planned": ["primary_consultation", "ncd_followup"],
        "priority": 3,
        "rescheduled_from": None,
        "location": dict(_KHARKIV),
        "scheduled_at": "2026-01-15T15:31:00+02:00",
    },
    "org.aidmesh.health.visit.missed.v1": {
        "visit_id": "2d6f8b1a-3c59-4e07-a4b2-9e1c7d5f0a83",
        "household_id": _HOUSEHOLD_ID,
        "team_code": "MMT-KH-01",
        "reason_code": "no_show",
        "recorded_at": "2026-01-21T17:00:00+02:00",
    },
    "org.aidmesh.protection.case.closed.v1": {
        "case_ref": "PRT-7K3M9Q2XWD",
        "household_id": _HOUSEHOLD_ID,
        "closure_code": "goals_met",
        "closed_at": "2026-04-30T12:00:00+02:00",
    },
    # Multi-purpose cash: a cycle for Kharkiv oblast, three months, paid by bank transfer.
    "org.aidmesh.cash.cycle.opened.v1": {
        "cycle_id": _CYCLE_ID,
        "adm1_pcodes": ["UA63"],
        "first_month": "2027-02",
        "months": 3,
        "budget": {"amount": "5000000.00", "currency": "UAH"},
        "fsp": "privatbank",
        "modality": "bank_transfer",
        "opened_by": "IOM",
        "opened_at": "2027-01-25T09:00:00+02:00",
    },
    "org.aidmesh.cash.cycle.approved.v1": {
        "cycle_id": _CYCLE_ID,
        "payments": 462,
        "total": {"amount": "4989600.00", "currency": "UAH"},
        "approved_by": "IOM",
        "approved_at": "2027-01-26T15:30:00+02:00",
    },
    "org.aidmesh.cash.payment.instructed.v1": {
        "payment_id": _PAYMENT_ID,
        "cycle_id": _CYCLE_ID,
        "household_id": _HOUSEHOLD_ID,
        "amount": {"amount": "43200.00", "currency": "UAH"},
        "first_month": "2027-02",
        "months": 3,
        "fsp": "privatbank",
        "modality": "bank_transfer",
        "instructed_at": "2027-01-26T15:30:00+02:00",
    },
    "org.aidmesh.cash.payment.confirmed.v1": {
        "payment_id": _PAYMENT_ID,
        "cycle_id": _CYCLE_ID,
        "household_id": _HOUSEHOLD_ID,
        "amount": {"amount": "43200.00", "currency": "UAH"},
        "fsp": "privatbank",
        "paid_at": "2027-02-03T12:00:00+02:00",
    },
    "org.aidmesh.cash.payment.failed.v1": {
        "payment_id": _PAYMENT_ID,
        "cycle_id": _CYCLE_ID,
        "household_id": _HOUSEHOLD_ID,
        "outcome": "failed",
        "reason": "account_closed",
        "next_step": "retry_next_cycle",
        "reported_at": "2027-02-05T10:00:00+02:00",
    },
    "org.aidmesh.registration.payee.withheld.v1": {
        "payment_id": _PAYMENT_ID,
        "cycle_id": _CYCLE_ID,
        "household_id": _HOUSEHOLD_ID,
        "reason": "no_bank_account",
        "withheld_at": "2027-01-27T08:00:00+02:00",
    },
    "org.aidmesh.registration.overlap.found.v1": {
        "overlap_id": "0c5e9b7a-3f14-4d28-9e6a-8b2d1f7c4e90",
        "household_id": _HOUSEHOLD_ID,
        "list_id": "7b1d4f8e-2c69-4a05-b3e7-9f0a6d2c5b18",
        "agency": "UNHCR",
        "sector": "cash",
        "first_month": "2027-02",
        "months": 3,
        "found_at": "2027-01-24T16:40:00+02:00",
    },
}


def example(event_type: str) -> dict[str, Any]:
    """A fresh deep copy of the example of one event type, safe to modify."""
    return copy.deepcopy(EXAMPLES[event_type])
