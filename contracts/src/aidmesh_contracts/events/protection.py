"""Protection context (restricted topic): a pseudonymous case reference and coarse codes only.

No names, no narrative, no case notes: those stay encrypted in the protection database.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar
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
    """How the case came to protection."""

    NEED_ASSESSMENT = "need_assessment"
    REFERRAL = "referral"
    HOTLINE = "hotline"


@event(type="org.aidmesh.protection.case.opened.v1", topic=topics.PROTECTION_CASE)
class ProtectionCaseOpened(Event):
    """A protection case was opened. A hotline case may have no household yet."""

    subject_description: ClassVar[str] = (
        "The household id (UUID), or the pseudonymous case reference (PRT-...) for a hotline"
        " case with no household yet."
    )

    case_ref: CaseRef
    household_id: UUID | None = Field(
        default=None, description="The household, when known (not for an anonymous hotline call)."
    )
    source: CaseSource = Field(description="Need assessment, referral or hotline.")
    severity: Severity
    concern_codes: frozenset[Code] = Field(
        default=frozenset(), description="Coarse concern codes only; never a narrative."
    )
    opened_at: AwareDatetime = Field(description="When the case was opened.")

    def subject(self) -> str:
        return str(self.household_id) if self.household_id else self.case_ref


@event(type="org.aidmesh.protection.case.closed.v1", topic=topics.PROTECTION_CASE)
class ProtectionCaseClosed(Event):
    """A protection case was closed. Coarse closure code only."""

    subject_description: ClassVar[str] = ProtectionCaseOpened.subject_description

    case_ref: CaseRef
    household_id: UUID | None = Field(
        default=None, description="The household, when known (not for an anonymous hotline call)."
    )
    closure_code: Code = Field(
        description="Why: goals_met, referred, lost_contact, consent_withdrawn, merged, ..."
    )
    closed_at: AwareDatetime = Field(description="When the case was closed.")

    def subject(self) -> str:
        return str(self.household_id) if self.household_id else self.case_ref
