"""Multi-purpose cash (MPCA): payment cycles and the payments they instruct.

Ids, codes and amounts only. Who is paid where (names, documents, bank accounts) never
travels on the bus: registration writes the financial service provider's file from
`PaymentInstructed` for the households that consented to data sharing.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar
from uuid import UUID

from pydantic import AwareDatetime, Field, StringConstraints

from .. import topics
from ..base import Event, event
from ..common import Adm1PCode, Code, Money, OrgCode, Sector

# FspCode moved to common (registration's consents name a provider too); re-exported here
# for the modules that import it from cash.
from ..common import FspCode as FspCode

Month = Annotated[
    str,
    StringConstraints(pattern=r"^\d{4}-(0[1-9]|1[0-2])$"),
    Field(description="A calendar month, YYYY-MM.", examples=["2027-01"]),
]
Months = Annotated[int, Field(ge=1, le=12, description="How many months, from `first_month`.")]


class PaymentModality(StrEnum):
    """How the money reaches the household."""

    BANK_TRANSFER = "bank_transfer"  # to the household's own account (IBAN)
    CASH_PICKUP = "cash_pickup"  # collected at an agent against an identity document


class PaymentOutcome(StrEnum):
    """A payment the provider reports as not paid."""

    FAILED = "failed"  # the provider could not pay (closed account, wrong details)
    UNCLAIMED = "unclaimed"  # offered for pick-up, never collected


class NextStep(StrEnum):
    """What happens to the entitlement of a payment not paid."""

    RETRY_NEXT_CYCLE = "retry_next_cycle"
    SWITCH_MODALITY = "switch_modality"


class _CycleEvent(Event):
    subject_description: ClassVar[str] = (
        "The cycle id (UUID): a cycle's own events are on one partition, in order."
    )

    cycle_id: UUID = Field(description="The payment cycle (also the Kafka key).")

    def subject(self) -> str:
        return str(self.cycle_id)


@event(type="org.aidmesh.cash.cycle.opened.v1", topic=topics.CASH_PAYMENT)
class PaymentCycleOpened(_CycleEvent):
    """A programme officer opened a payment cycle: which oblasts, which months, what budget.
    The list it proposes waits for a second person's approval."""

    adm1_pcodes: Annotated[
        frozenset[Adm1PCode],
        Field(min_length=1, max_length=27, description="The oblasts the cycle pays in."),
    ]
    first_month: Month
    months: Months
    budget: Money = Field(description="The most the cycle may pay in total.")
    fsp: FspCode
    modality: PaymentModality
    opened_by: OrgCode = Field(description="The organisation that opened the cycle.")
    opened_at: AwareDatetime = Field(description="When the cycle was opened.")


@event(type="org.aidmesh.cash.cycle.approved.v1", topic=topics.CASH_PAYMENT)
class PaymentCycleApproved(_CycleEvent):
    """A second person approved the cycle's list: `payments` PaymentInstructed events of the
    cycle follow (keyed by household), worth `total`. A reader knows it has the whole list
    once it holds that many."""

    payments: Annotated[int, Field(ge=0, le=10_000_000, description="Payments instructed.")]
    total: Money = Field(description="What the instructed payments add up to.")
    approved_by: OrgCode = Field(description="The organisation of the approver.")
    approved_at: AwareDatetime = Field(description="When the cycle was approved.")


@event(type="org.aidmesh.cash.payment.instructed.v1", topic=topics.CASH_PAYMENT)
class PaymentInstructed(Event):
    """Pay this household this amount through this provider, for these months. Carries no
    personal data: registration adds the payee's details in the provider's file only."""

    payment_id: UUID = Field(description="This payment: the provider reports against it.")
    cycle_id: UUID = Field(description="The cycle that instructed it.")
    household_id: UUID = Field(description="The household paid (also the Kafka key).")
    amount: Money = Field(description="What to pay.")
    first_month: Month
    months: Months
    fsp: FspCode
    modality: PaymentModality
    instructed_at: AwareDatetime = Field(description="When the cycle was approved.")


@event(type="org.aidmesh.cash.payment.confirmed.v1", topic=topics.CASH_PAYMENT)
class PaymentConfirmed(Event):
    """The provider reported the payment paid, and its report reconciled."""

    payment_id: UUID = Field(description="The payment paid.")
    cycle_id: UUID = Field(description="Its cycle.")
    household_id: UUID = Field(description="The household paid (also the Kafka key).")
    amount: Money = Field(description="What was paid: the instructed amount.")
    fsp: FspCode
    paid_at: AwareDatetime = Field(description="When the provider paid it.")


@event(type="org.aidmesh.cash.payment.failed.v1", topic=topics.CASH_PAYMENT)
class PaymentFailed(Event):
    """The provider reported the payment failed or unclaimed; the entitlement is kept for
    `next_step`."""

    payment_id: UUID = Field(description="The payment not paid.")
    cycle_id: UUID = Field(description="Its cycle.")
    household_id: UUID = Field(description="The household (also the Kafka key).")
    outcome: PaymentOutcome
    reason: Code | None = Field(
        default=None, description="The provider's reason code, if it gave one."
    )
    next_step: NextStep
    reported_at: AwareDatetime = Field(description="When the provider's report was imported.")


# ---- what registration tells cash (on the household topic, keyed by the household) ----------


class WithheldReason(StrEnum):
    """Why registration left a household out of a provider's file."""

    NO_DATA_SHARING_CONSENT = "no_data_sharing_consent"
    NO_BANK_ACCOUNT = "no_bank_account"  # a bank transfer needs the household's IBAN
    NO_DOCUMENT = "no_document"  # a cash pick-up needs an identity document
    ERASED = "erased"  # the household's personal data was erased
    UNKNOWN_HOUSEHOLD = "unknown_household"


@event(type="org.aidmesh.registration.payee.withheld.v1", topic=topics.HOUSEHOLD)
class PayeeWithheld(Event):
    """Registration did not put this household in the provider's file for a payment (the
    provider will not pay it): the payment is not made, and its months are free again."""

    payment_id: UUID = Field(description="The instructed payment left out of the file.")
    cycle_id: UUID = Field(description="Its cycle.")
    household_id: UUID = Field(description="The household (also the Kafka key).")
    reason: WithheldReason
    withheld_at: AwareDatetime = Field(description="When the provider's file was written.")


@event(type="org.aidmesh.registration.overlap.found.v1", topic=topics.HOUSEHOLD)
class AssistanceOverlapFound(Event):
    """Another agency's list of assisted people names a member of this household: its
    keyed hash of a document number matched one of the household's. Ids only: neither the
    list nor the event carries the document number."""

    overlap_id: UUID = Field(description="Stable per list and household (redeliveries match).")
    household_id: UUID = Field(description="The household (also the Kafka key).")
    list_id: UUID = Field(description="The other agency's list, as registration received it.")
    agency: OrgCode = Field(description="The agency that assists the household.")
    sector: Sector = Field(description="What the other agency gives (cash, for MPCA lists).")
    first_month: Month
    months: Months
    found_at: AwareDatetime = Field(description="When registration matched the list.")
