"""Protection context (restricted topic): a pseudonymous case reference and coarse codes only.

No names, no narrative, no case notes: those stay encrypted in the protection database.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import AwareDatetime, Field, StringConstraints

from .. import topics
from ..base import Event, event
from ..common import Code, Severity

CaseRef = Annotated[
    str,
    StringConstraints(pattern=r"^PRT-[0-9A-HJKMNP-TV-Z]{10}$"),
    Field(description="Pseudonymous case reference; reveals nothing about the person."),
]


class CaseSource(StrEnum):
    NEED_ASSESSMENT = "need_assessment"
    REFERRAL = "referral"
    HOTLINE = "hotline"


@event(type="org.aidmesh.protection.case.opened.v1", topic=topics.PROTECTION_CASE)
class ProtectionCaseOpened(Event):
    """A protection case was opened. A hotline case may have no household yet."""

    case_ref: CaseRef
    household_id: UUID | None = None
    source: CaseSource
    severity: Severity
    concern_codes: frozenset[Code] = frozenset()
    opened_at: AwareDatetime

    def subject(self) -> str:
        return str(self.household_id) if self.household_id else self.case_ref
