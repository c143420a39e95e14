"""Protection rules. Pure: no database, no Kafka, no clock."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from aidmesh_contracts import CaseSource, NeedAssessed, ProtectionCaseOpened, ProtectionNeedDetails

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def case_ref(random_id: UUID) -> str:
    """A pseudonymous reference, derived from a random id (never from the household id),
    so it reveals nothing about who the case is about."""
    # The low 50 bits: in a version-4 UUID all of them are random (the version and variant
    # bits sit higher up), so every one of the 32^10 references is possible.
    bits = random_id.int & ((1 << 50) - 1)
    chars = [CROCKFORD[(bits >> shift) & 0x1F] for shift in range(45, -1, -5)]
    return "PRT-" + "".join(chars)


def open_case_from_need(need: NeedAssessed, *, random_id: UUID, now: datetime) -> ProtectionCaseOpened:
    details = need.details
    concerns = details.concern_codes if isinstance(details, ProtectionNeedDetails) else frozenset()
    return ProtectionCaseOpened(
        case_ref=case_ref(random_id),
        household_id=need.household_id,
        source=CaseSource.NEED_ASSESSMENT,
        severity=need.severity,
        concern_codes=concerns,
        opened_at=now,
    )
