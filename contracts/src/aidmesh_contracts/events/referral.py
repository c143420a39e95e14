"""Referrals between sectors and to external services, always checked against consent.

A referral carries the household id, the target, a coarse reason code and the urgency:
never a narrative, a diagnosis or anything that identifies a person.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import AwareDatetime, Field, StringConstraints

from .. import topics
from ..base import Event, event
from ..common import Code, OrgCode, Sector
from .registration import ConsentPurpose

#: A sector (`shelter`) or an external service (`external.state_compensation`).
ReferralTarget = Annotated[
    str,
    StringConstraints(pattern=r"^([a-z]+|external\.[a-z][a-z0-9_]{1,63})$"),
    Field(
        description="A sector code, or `external.<service>` for a service outside AidMesh.",
        examples=["protection", "external.state_compensation"],
    ),
]


class Urgency(StrEnum):
    """How soon the target should act."""

    ROUTINE = "routine"
    PRIORITY = "priority"
    EMERGENCY = "emergency"


@event(type="org.aidmesh.referral.referral.requested.v1", topic=topics.REFERRAL)
class ReferralRequested(Event):
    """A sector referred a household to another sector or an external service, with consent."""

    referral_id: UUID = Field(description="This referral; every later referral event names it.")
    household_id: UUID = Field(description="The household (also the Kafka key and `ce_subject`).")
    from_sector: Sector = Field(description="The sector that refers.")
    to: ReferralTarget
    reason_code: Code = Field(description="Why, as a coarse code (never a narrative).")
    urgency: Urgency = Field(description="Routine, priority or emergency.")
    consent_purpose: ConsentPurpose = Field(
        description="The consent purpose checked before referring (normally `referral`)."
    )
    requested_by: OrgCode = Field(description="The team or organisation that referred.")
    requested_at: AwareDatetime = Field(description="When the referral was made.")


@event(type="org.aidmesh.referral.referral.accepted.v1", topic=topics.REFERRAL)
class ReferralAccepted(Event):
    """The target took the referral on."""

    referral_id: UUID = Field(description="The referral.")
    household_id: UUID = Field(description="The household (also the Kafka key and `ce_subject`).")
    accepted_by: ReferralTarget
    accepted_at: AwareDatetime = Field(description="When it was accepted.")


@event(type="org.aidmesh.referral.referral.declined.v1", topic=topics.REFERRAL)
class ReferralDeclined(Event):
    """The target (or the referring sector, when consent is gone) declined the referral."""

    referral_id: UUID = Field(description="The referral.")
    household_id: UUID = Field(description="The household (also the Kafka key and `ce_subject`).")
    declined_by: ReferralTarget
    reason_code: Code = Field(
        description="Why, e.g. no_capacity, out_of_area, consent_withdrawn, not_eligible."
    )
    declined_at: AwareDatetime = Field(description="When it was declined.")


@event(type="org.aidmesh.referral.referral.completed.v1", topic=topics.REFERRAL)
class ReferralCompleted(Event):
    """The target finished what the referral asked for."""

    referral_id: UUID = Field(description="The referral.")
    household_id: UUID = Field(description="The household (also the Kafka key and `ce_subject`).")
    completed_by: ReferralTarget
    outcome_code: Code = Field(description="What came of it, e.g. service_provided, assisted.")
    completed_at: AwareDatetime = Field(description="When it was completed.")


__all__ = [
    "ReferralAccepted",
    "ReferralCompleted",
    "ReferralDeclined",
    "ReferralRequested",
    "ReferralTarget",
    "Urgency",
]
