"""The financial service provider's file: rules, pure (issue 24).

Cash instructs payments with ids and amounts only; the provider needs to know whom to pay.
Registration writes that file, one row per payment whose household (a merged one's
survivor) consents to data sharing with that provider (the cycle's `fsp`: consent to data
sharing in general names no provider, so is not enough), is not erased, and has what the
modality needs: a bank transfer its IBAN, a cash pick-up an identity document. Every other payment is
withheld, with a reason cash is told (PayeeWithheld).

The columns (README, "The provider's file"), in this order:

| column | |
|---|---|
| `payment_id` | the payment (the provider reports against it) |
| `amount` | what to pay, a decimal with two places (`3600.00`) |
| `currency` | `UAH` |
| `payee_name` | family name, given name and patronymic, as on Ukrainian documents |
| `iban` | bank transfer: the household's IBAN, without spaces |
| `document_type`, `document_number` | cash pick-up: `passport` or `id_card`, as registered |
| `phone` | cash pick-up: the household's phone (E.164), empty if none |

UTF-8, comma-separated, a header row, RFC 4180 quoting and line ends (CRLF), rows in
payment id order, so the same decisions give the same file.

Pure: no database, no clock (today is passed in).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from aidmesh_contracts import PaymentModality, WithheldReason

from .domain import (
    Conflict,
    DocumentKind,
    Household,
    HouseholdStatus,
    Member,
    NotFound,
    Relation,
    age_on,
)

COMMON_COLUMNS = ("payment_id", "amount", "currency", "payee_name")
MODALITY_COLUMNS: dict[PaymentModality, tuple[str, ...]] = {
    PaymentModality.BANK_TRANSFER: ("iban",),
    PaymentModality.CASH_PICKUP: ("document_type", "document_number", "phone"),
}
#: What a cash pick-up agent accepts, in order of preference (an IDP certificate is no
#: identity document).
IDENTITY_DOCUMENTS = (DocumentKind.PASSPORT, DocumentKind.ID_CARD)
#: Who may collect cash for the household besides its head: an adult member.
ADULT_AGE = 18


@dataclass(frozen=True)
class Instruction:
    """A payment as cash instructed it (PaymentInstructed), as registration keeps it."""

    payment_id: UUID
    household_id: UUID
    amount: Decimal
    currency: str
    modality: PaymentModality
    #: The financial service provider that pays it (the cycle's), whose file this is.
    fsp: str


@dataclass(frozen=True)
class Row:
    """One line of the provider's file (personal data: in the file only)."""

    payment_id: UUID
    amount: Decimal
    currency: str
    payee_name: str
    iban: str | None = None
    document_type: str | None = None
    document_number: str | None = None
    phone: str | None = None

    def cells(self, columns: Sequence[str]) -> list[str]:
        values = {
            "payment_id": str(self.payment_id),
            "amount": f"{self.amount:.2f}",
            "currency": self.currency,
            "payee_name": self.payee_name,
            "iban": self.iban or "",
            "document_type": self.document_type or "",
            "document_number": self.document_number or "",
            "phone": self.phone or "",
        }
        return [values[column] for column in columns]


def payee_name(member: Member) -> str:
    """Family name, given name and patronymic, as Ukrainian documents and banks write them."""
    return " ".join(n for n in (member.family_name, member.given_name, member.patronymic) if n)


def decide(
    instruction: Instruction, household: Household | None, *, today: date
) -> Row | WithheldReason:
    """The file's row for a payment, or why it is withheld. `household`: the instructed
    household, or the survivor it was merged into; None when registration has none."""
    if household is None:
        return WithheldReason.UNKNOWN_HOUSEHOLD
    if household.status is HouseholdStatus.ERASED:
        return WithheldReason.ERASED
    if instruction.fsp not in household.data_sharing_with:
        return WithheldReason.NO_DATA_SHARING_CONSENT
    paid = instruction.payment_id, instruction.amount, instruction.currency
    if instruction.modality is PaymentModality.BANK_TRANSFER:
        if household.iban is None:
            return WithheldReason.NO_BANK_ACCOUNT
        return Row(*paid, payee_name=payee_name(household.head), iban=household.iban)
    found = collector(household, today=today)
    if found is None:
        return WithheldReason.NO_DOCUMENT
    member, kind, number = found
    return Row(
        *paid,
        payee_name=payee_name(member),
        document_type=kind.value,
        document_number=number,
        phone=household.phone,
    )


def collector(household: Household, *, today: date) -> tuple[Member, DocumentKind, str] | None:
    """Who collects a cash pick-up, with which document: the head if they hold an identity
    document, else the first adult member who does (the name in the file is the name on
    the document the agent checks)."""
    members = sorted(household.members, key=lambda m: m.relation is not Relation.HEAD)
    for member in members:
        if member.relation is not Relation.HEAD and age_on(member.date_of_birth, today) < ADULT_AGE:
            continue
        for kind in IDENTITY_DOCUMENTS:
            number = next((d.number for d in member.documents if d.kind is kind), None)
            if number is not None:
                return member, kind, number
    return None


def columns(modalities: Iterable[PaymentModality]) -> tuple[str, ...]:
    """The file's columns: the common ones, then each modality's (a cycle has one)."""
    present = set(modalities)
    extra = [c for m in PaymentModality if m in present for c in MODALITY_COLUMNS[m]]
    return COMMON_COLUMNS + tuple(extra)


def write_csv(rows: Iterable[Row], *, columns: Sequence[str]) -> str:
    """The file: a header row, then the rows in payment id order."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in sorted(rows, key=lambda r: str(r.payment_id)):
        writer.writerow(row.cells(columns))
    return out.getvalue()


# ---- when the file can be written ----------------------------------------------------------


@dataclass(frozen=True)
class Cycle:
    """A cycle as its approval announced it, and what arrived of it."""

    cycle_id: UUID
    payments: int
    total: Decimal
    file_produced_at: datetime | None


def refuse_unless_complete(
    cycle_id: UUID, cycle: Cycle | None, *, received: int, received_total: Decimal
) -> Cycle:
    """The cycle, once every PaymentInstructed its approval announced has arrived: 404 for a
    cycle registration knows nothing of, 409 `incomplete` until then (how many of how many),
    409 `inconsistent` when what arrived does not add up to the approval."""
    if cycle is None:
        if received == 0:
            raise NotFound(f"payment cycle {cycle_id} not found")
        raise Conflict(
            f"payment cycle {cycle_id}: {received} payment instructions received, its approval"
            " (which says how many to expect) not yet",
            code="incomplete",
        )
    if received < cycle.payments:
        raise Conflict(
            f"payment cycle {cycle_id}: {received} of {cycle.payments} payment instructions"
            " received so far",
            code="incomplete",
        )
    if received > cycle.payments or received_total != cycle.total:
        raise Conflict(
            f"payment cycle {cycle_id}: {received} payment instructions worth"
            f" {received_total:.2f} received, the approval announced {cycle.payments} worth"
            f" {cycle.total:.2f}",
            code="inconsistent",
        )
    return cycle
