"""HTTP API of registration for cash (issue 24): the provider's payment file, and other
agencies' lists of assisted people. Thin: check the scope, call the use case, answer.

- `registration:payment-files`: a cash officer (or the provider's liaison) downloads a
  cycle's file; every download is recorded (who, which cycle, how many rows), never what
  it held.
- `registration:assistance-lists`: another agency sends its hashed list, attributed to its
  token's organisation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from aidmesh_contracts import WithheldReason
from aidmesh_runtime.auth import (
    REGISTRATION_ASSISTANCE_LISTS,
    REGISTRATION_PAYMENT_FILES,
    Principal,
    attributed,
    require_scope,
)
from aidmesh_runtime.service import Runtime, runtime_of
from fastapi import APIRouter, Depends, status
from fastapi.responses import Response
from pydantic import BaseModel, Field

from . import overlaps, payments
from .interagency import AssistanceListIn
from .service import vault_of

RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
FileReader = Annotated[Principal, require_scope(REGISTRATION_PAYMENT_FILES)]
Agency = Annotated[Principal, require_scope(REGISTRATION_ASSISTANCE_LISTS)]

payment_files = APIRouter(tags=["payment files"])
assistance_lists = APIRouter(tags=["assistance lists"])

INCOMPLETE = {
    "description": "`incomplete`: not every PaymentInstructed of the cycle has arrived yet"
    " (the message says how many of how many); `inconsistent`: what arrived does not add up"
    " to the approval"
}

FILE_DESCRIPTION = """\
The financial service provider's file for an approved cash cycle, written from cash's
PaymentInstructed events once all of them have arrived: one row per payment whose
household (a merged one's survivor) consents to data sharing, is not erased and has what
the modality needs. Every other payment is withheld: the first time the file is produced,
one PayeeWithheld per withheld payment is published (never again; the file itself can be
downloaded again, with the same payments). Each download is recorded.

CSV, UTF-8, comma-separated, a header row, RFC 4180 quoting, CRLF line ends, rows in
`payment_id` order. Columns:

- `payment_id`: the payment (the provider reports against it)
- `amount`: what to pay, two decimals (`3600.00`)
- `currency`: `UAH`
- `payee_name`: family name, given name and patronymic, as on Ukrainian documents
- bank transfer: `iban`, the household's IBAN without spaces (the payee is the head)
- cash pick-up: `document_type` (`passport` or `id_card`), `document_number`, as
  registered, of the payee (the head, else the first adult member holding one), and
  `phone`, the household's (E.164, empty if none)
"""


@payment_files.get(
    "/payment-files/{cycle_id}",
    summary="The provider's payment file of an approved cash cycle (CSV): PayeeWithheld once",
    description=FILE_DESCRIPTION,
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {}}, "description": "The file (personal data)"},
        404: {"description": "No such cycle"},
        409: INCOMPLETE,
    },
)
async def payment_file(cycle_id: UUID, runtime: RuntimeDep, principal: FileReader) -> Response:
    async with runtime.transaction() as tx:
        produced = await payments.produce_file(
            tx,
            cycle_id,
            vault=vault_of(runtime),
            downloaded_by=principal.sub,
            org=principal.org,
        )
    return Response(
        content=produced.csv,
        media_type="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="payments-{cycle_id}.csv"',
            # Personal data: no cache along the way may keep a copy.
            "Cache-Control": "no-store",
        },
    )


class WithheldOut(BaseModel):
    payment_id: UUID
    household_id: UUID = Field(description="The household cash instructed the payment for.")
    reason: WithheldReason


class WithheldListOut(BaseModel):
    cycle_id: UUID
    file_produced_at: datetime = Field(description="When the file was first produced.")
    items: list[WithheldOut] = Field(description="In payment id order.")


@payment_files.get(
    "/payment-files/{cycle_id}/withheld",
    response_model=WithheldListOut,
    summary="The payments a cycle's file left out, and why (ids and reasons only)",
    responses={
        404: {"description": "No such cycle"},
        409: {"description": "`not_produced`: the file was not produced yet"},
    },
)
async def withheld_payments(
    cycle_id: UUID, runtime: RuntimeDep, principal: FileReader
) -> WithheldListOut:
    async with runtime.pool.acquire() as conn:
        found = await payments.withheld(conn, cycle_id)
    return WithheldListOut(
        cycle_id=found.cycle_id,
        file_produced_at=found.file_produced_at,
        items=[
            WithheldOut(
                payment_id=w.payment_id,
                household_id=w.household_id,
                reason=WithheldReason(w.reason),
            )
            for w in found.items
        ],
    )


class MatchedOut(BaseModel):
    list_id: UUID = Field(description="The list (the same list sent again has the same id).")
    hashes: int = Field(description="Distinct hashes received.")
    matched_households: int = Field(
        description="Households of the registry the list names (a count: which hash matched"
        " whom is never told)."
    )


@assistance_lists.post(
    "/assistance-lists",
    status_code=status.HTTP_200_OK,
    response_model=MatchedOut,
    summary="Match another agency's list of assisted people: AssistanceOverlapFound per household",
    description=(
        "The agency's beneficiaries as HMAC-SHA256, under the key the agencies share, of"
        " each one's document number normalised (README: no spaces, hyphens or dots,"
        " upper-case, Latin look-alike letters as Cyrillic). Matched by lookup, without"
        " decrypting the registry; nothing of the list is kept but its counts. One"
        " AssistanceOverlapFound (ids only) per household found, once per list."
    ),
    responses={
        403: {"description": "`agency` is not the token's organisation"},
        409: {"description": "`interagency_key_missing`: registration has no shared key"},
        422: {"description": "Invalid list: the field and the reason"},
    },
)
async def match_assistance_list(
    assistance: AssistanceListIn, runtime: RuntimeDep, principal: Agency
) -> MatchedOut:
    agency = attributed(principal, assistance.agency, field="agency")
    async with runtime.transaction() as tx:
        matched = await overlaps.match_list(
            tx, assistance, agency=agency, vault=vault_of(runtime), received_by=principal.sub
        )
    return MatchedOut(
        list_id=matched.list_id,
        hashes=matched.hashes,
        matched_households=matched.matched_households,
    )
