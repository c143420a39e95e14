"""Registration context: who a household is, in ids, counts, codes and flags only.

Names, phone numbers, documents and addresses stay in the registration database.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Self
from uuid import UUID

from pydantic import AwareDatetime, Field, StringConstraints, model_validator

from .. import topics
from ..base import Event, event
from ..common import Code, FrozenModel, FspCode, Location, OrgCode


class Channel(StrEnum):
    """How the household was registered."""

    FIELD_OFFICE = "field_office"
    HOTLINE = "hotline"
    PARTNER = "partner"
    KOBO = "kobo"
    BULK_IMPORT = "bulk_import"


class DisplacementStatus(StrEnum):
    """Displacement status of the household."""

    IDP = "idp"
    RETURNEE = "returnee"
    NON_DISPLACED = "non_displaced"
    HOST_COMMUNITY = "host_community"


class Vulnerability(StrEnum):
    """Vulnerability flags screened at registration."""

    DISABILITY = "disability"
    CHRONIC_ILLNESS = "chronic_illness"
    ELDERLY_HEADED = "elderly_headed"
    FEMALE_HEADED = "female_headed"
    CHILD_HEADED = "child_headed"
    PREGNANT_OR_LACTATING = "pregnant_or_lactating"
    UNACCOMPANIED_MINOR = "unaccompanied_minor"
    LARGE_FAMILY = "large_family"


class ConsentPurpose(StrEnum):
    """What the household agreed its data may be used for."""

    REGISTRATION = "registration"
    DATA_SHARING = "data_sharing"
    REFERRAL = "referral"


Count = Annotated[int, Field(ge=0, le=99, description="Members of this sex and age band.")]


class Composition(FrozenModel):
    """Household members counted by sex and age band (0-17, 18-59, 60+)."""

    female_0_17: Count = 0
    female_18_59: Count = 0
    female_60_plus: Count = 0
    male_0_17: Count = 0
    male_18_59: Count = 0
    male_60_plus: Count = 0

    def total(self) -> int:
        return (
            self.female_0_17
            + self.female_18_59
            + self.female_60_plus
            + self.male_0_17
            + self.male_18_59
            + self.male_60_plus
        )


@event(type="org.aidmesh.registration.household.registered.v1", topic=topics.HOUSEHOLD)
class HouseholdRegistered(Event):
    """A household was registered. Carries no personal data."""

    household_id: UUID = Field(description="The household (also the Kafka key and `ce_subject`).")
    registered_at: AwareDatetime = Field(description="When the household was registered.")
    channel: Channel = Field(description="How the household was registered.")
    partner_org: OrgCode | None = Field(
        default=None, description="The partner that registered it, if not IOM itself."
    )
    location: Location = Field(description="Where the household lives now (P-codes only).")
    displacement_status: DisplacementStatus = Field(description="IDP, returnee, and so on.")
    size: Annotated[int, Field(ge=1, le=99, description="Number of members, at least 1.")]
    composition: Composition = Field(description="Members by sex and age band; sums to size.")
    vulnerabilities: frozenset[Vulnerability] = Field(
        default=frozenset(), description="Vulnerability flags screened at registration."
    )
    consents: frozenset[ConsentPurpose] = Field(
        default=frozenset(), description="Purposes the household consented to."
    )

    @model_validator(mode="after")
    def _composition_matches_size(self) -> Self:
        if self.composition.total() != self.size:
            raise ValueError(
                f"composition counts {self.composition.total()} members but size is {self.size}"
            )
        return self


@event(type="org.aidmesh.registration.household.updated.v1", topic=topics.HOUSEHOLD)
class HouseholdUpdated(Event):
    """A household's shareable facts changed (an officer's edit, a Kobo edit, a partner update).

    Carries the whole new state of the shareable facts, not a diff, so a sector's projection
    is correct after any one of these events; `changed` says which facts moved.
    """

    household_id: UUID = Field(description="The household (also the Kafka key and `ce_subject`).")
    updated_at: AwareDatetime = Field(description="When the change was recorded.")
    channel: Channel = Field(description="How the change came in.")
    partner_org: OrgCode | None = Field(
        default=None, description="The partner that sent the change, if not IOM itself."
    )
    changed: frozenset[Code] = Field(
        min_length=1,
        description=(
            "Which facts changed: location, displacement_status, size, composition,"
            " vulnerabilities, members (personal details, not shared), contact (not shared),"
            " bank_account (the IBAN for cash payments, not shared)."
        ),
    )
    location: Location = Field(description="Where the household lives now (P-codes only).")
    displacement_status: DisplacementStatus = Field(description="IDP, returnee, and so on.")
    size: Annotated[int, Field(ge=1, le=99, description="Number of members, at least 1.")]
    composition: Composition = Field(description="Members by sex and age band; sums to size.")
    vulnerabilities: frozenset[Vulnerability] = Field(
        default=frozenset(), description="Vulnerability flags as screened now."
    )

    @model_validator(mode="after")
    def _composition_matches_size(self) -> Self:
        if self.composition.total() != self.size:
            raise ValueError(
                f"composition counts {self.composition.total()} members but size is {self.size}"
            )
        return self


class DuplicateReason(StrEnum):
    """Why two registrations look like the same household (never the matching values)."""

    SAME_DOCUMENT = "same_document"
    SAME_PHONE_SIMILAR_NAME = "same_phone_similar_name"
    SIMILAR_NAME = "similar_name"
    SAME_BIRTH_DATE = "same_birth_date"
    SWAPPED_DAY_MONTH = "swapped_day_month"
    SAME_LOCATION = "same_location"
    SIMILAR_MEMBERS = "similar_members"


@event(type="org.aidmesh.registration.duplicate.suspected.v1", topic=topics.HOUSEHOLD)
class DuplicateSuspected(Event):
    """Two registrations may be the same household; a person reviews it before any merge."""

    suspicion_id: UUID = Field(description="This suspicion, as listed in the review queue.")
    household_id: UUID = Field(
        description="The newer registration (also the Kafka key and `ce_subject`)."
    )
    candidate_household_id: UUID = Field(description="The earlier registration it resembles.")
    score: Annotated[
        float, Field(ge=0, le=1, description="Match score, 0 (different) to 1 (certain).")
    ]
    reasons: frozenset[DuplicateReason] = Field(
        min_length=1, description="Which rules matched; never the matched values themselves."
    )
    detected_at: AwareDatetime = Field(description="When the match was found.")


@event(type="org.aidmesh.registration.household.merged.v1", topic=topics.HOUSEHOLD)
class HouseholdMerged(Event):
    """A duplicate registration was merged into the household that stays.

    Sectors re-point what they hold for `merged_household_id` to `household_id`; the merged
    id never comes back. Keyed by the surviving household.
    """

    household_id: UUID = Field(
        description="The household that stays (also the Kafka key and `ce_subject`)."
    )
    merged_household_id: UUID = Field(description="The duplicate that no longer exists.")
    suspicion_id: UUID | None = Field(
        default=None, description="The DuplicateSuspected this merge resolved, if any."
    )
    decided_by: OrgCode = Field(description="The team or organisation that decided the merge.")
    merged_at: AwareDatetime = Field(description="When the merge was recorded.")


@event(type="org.aidmesh.registration.consent.recorded.v1", topic=topics.HOUSEHOLD)
class ConsentRecorded(Event):
    """A household gave consent for one purpose."""

    consent_id: UUID = Field(description="This consent record.")
    household_id: UUID = Field(description="The household (also the Kafka key and `ce_subject`).")
    purpose: ConsentPurpose = Field(description="What the consent is for.")
    recipient: FspCode | None = Field(
        default=None,
        description="For purpose data_sharing, the financial service provider the household"
        " agreed its details may be given to (to be paid by it); null: the purpose in general.",
    )
    recorded_by: OrgCode = Field(description="The team or organisation that recorded it.")
    recorded_at: AwareDatetime = Field(description="When consent was given.")


@event(type="org.aidmesh.registration.consent.withdrawn.v1", topic=topics.HOUSEHOLD)
class ConsentWithdrawn(Event):
    """A household withdrew consent for one purpose: stop sharing and referring from now on."""

    consent_id: UUID = Field(description="The consent record withdrawn.")
    household_id: UUID = Field(description="The household (also the Kafka key and `ce_subject`).")
    purpose: ConsentPurpose = Field(description="What the withdrawn consent was for.")
    recipient: FspCode | None = Field(
        default=None,
        description="For purpose data_sharing, the financial service provider the household"
        " agreed its details may be given to (to be paid by it); null: the purpose in general.",
    )
    recorded_by: OrgCode = Field(description="The team or organisation that recorded it.")
    withdrawn_at: AwareDatetime = Field(description="When consent was withdrawn.")


@event(type="org.aidmesh.registration.household.erased.v1", topic=topics.HOUSEHOLD)
class HouseholdErased(Event):
    """A household's personal data was erased at its request (or by law): registration
    destroyed the key it was encrypted with, so it can never be read again.

    Treat it as a withdrawal of every consent: stop sharing and referring it, and never
    ask registration about it again (its record answers 410 Gone). What was shared before
    (ids, codes, counts) stays as history. Carries ids and codes only. Keyed by the
    household.
    """

    household_id: UUID = Field(description="The household (also the Kafka key and `ce_subject`).")
    merged_household_ids: frozenset[UUID] = Field(
        default_factory=frozenset,
        description="Duplicates merged into it earlier, erased with it.",
    )
    reason_code: Code = Field(
        description="Why: a code such as `data_subject_request` or `consent_withdrawn`."
    )
    requested_by: OrgCode = Field(description="The team or organisation that requested it.")
    erased_at: AwareDatetime = Field(description="When the key was destroyed.")


class IntakeSource(StrEnum):
    """Where a raw submission came from."""

    KOBO = "kobo"
    PARTNER = "partner"


SubmissionId = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9:_.-]{1,128}$"),
    Field(description="The sender's id of the submission, e.g. Kobo `meta/instanceID`."),
]


@event(type="org.aidmesh.registration.intake.submitted.v1", topic=topics.REGISTRATION_INTAKE)
class IntakeSubmitted(Event):
    """A partner system or KoboToolbox submitted a registration, raw, for registration to map.

    PERSONAL topic: the answers hold names, phones and documents. Only registration reads it.
    Keyed by `submission_id`; an edit names the submission it replaces in `replaces`.
    """

    subject_description: ClassVar[str] = "The submission id (an edit has its own id)."

    submission_id: SubmissionId
    replaces: SubmissionId | None = Field(
        default=None, description="The submission this one edits (Kobo `meta/deprecatedID`)."
    )
    source: IntakeSource = Field(description="KoboToolbox or a partner system.")
    partner_org: OrgCode = Field(description="The organisation that collected it.")
    form_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = Field(
        description="The form or partner schema the answers follow."
    )
    submitted_at: AwareDatetime = Field(description="When the sender received the submission.")
    format: Literal["kobo_json", "aidmesh_household_v1"] = Field(
        description="How `answers` is laid out: Kobo `group/question` keys, or our household JSON."
    )
    answers: dict[str, Any] = Field(description="The submission as sent. Personal data.")

    def subject(self) -> str:
        return self.submission_id


__all__ = [
    "Channel",
    "Composition",
    "ConsentPurpose",
    "ConsentRecorded",
    "ConsentWithdrawn",
    "DisplacementStatus",
    "DuplicateReason",
    "DuplicateSuspected",
    "HouseholdErased",
    "HouseholdMerged",
    "HouseholdRegistered",
    "HouseholdUpdated",
    "IntakeSource",
    "IntakeSubmitted",
    "Vulnerability",
]
