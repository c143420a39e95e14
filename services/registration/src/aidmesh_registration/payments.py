"""Cash's payment instructions and the provider's file: use cases and handlers (issue 24).

Cash approves a cycle (PaymentCycleApproved: how many payments follow) and instructs each
payment (PaymentInstructed, keyed by household, so on other partitions: either may come
first). Registration keeps both (idempotently) and, once every instruction of a cycle has
arrived, writes the provider's file (payment_file.py) when asked for it. The first time,
who is in it and who is withheld is decided and kept, and one PayeeWithheld per withheld
payment is published in the same transaction; later downloads write the same payments,
with the payees' details as they are then (a payee no longer shareable is left out).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import structlog
from aidmesh_contracts import (
    Envelope,
    PayeeWithheld,
    PaymentCycleApproved,
    PaymentInstructed,
    WithheldReason,
)
from aidmesh_contracts.base import Event
from aidmesh_runtime.consumer import Handler, HandlerContext
from aidmesh_runtime.transaction import Tx

from . import payment_file, repository
from . import payments_repository as stored
from .crypto import Vault
from .domain import Conflict, Household, NotFound
from .payment_file import Row

log = structlog.get_logger(__name__)

#: Households decrypted per query while a file is written.
BATCH = 1000


# ---- what cash instructs ---------------------------------------------------------------------


async def record_approval(tx: Tx, event: PaymentCycleApproved) -> None:
    new = await stored.insert_cycle(tx.conn, event, received_at=tx.now())
    log.info(
        "payment_cycle_approval_received",
        cycle_id=str(event.cycle_id),
        payments=event.payments,
        repeated=not new,
    )


async def record_instruction(tx: Tx, event: PaymentInstructed) -> None:
    assert tx.cause is not None  # a handler's context: the PaymentInstructed's envelope
    new = await stored.insert_instruction(tx.conn, event, envelope=tx.cause, received_at=tx.now())
    if not new:
        log.info("payment_instruction_repeated", payment_id=str(event.payment_id))


def payment_handlers() -> dict[type[Event], Handler]:
    """The handlers of cash's payment topic (aidmesh.cash.payment.v1) registration needs."""

    async def on_cycle_approved(event: PaymentCycleApproved, ctx: HandlerContext) -> None:
        await record_approval(ctx, event)

    async def on_payment_instructed(event: PaymentInstructed, ctx: HandlerContext) -> None:
        await record_instruction(ctx, event)

    return {PaymentCycleApproved: on_cycle_approved, PaymentInstructed: on_payment_instructed}


# ---- the provider's file -----------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentFile:
    cycle_id: UUID
    csv: str
    rows: int
    #: Payments withheld (PayeeWithheld), this time or the first time.
    withheld: int
    #: In the first file, but no longer shareable (erased, consent withdrawn, details gone).
    dropped: int
    first: bool


async def produce_file(
    tx: Tx, cycle_id: UUID, *, vault: Vault, downloaded_by: str, org: str
) -> PaymentFile:
    """The provider's file of a cycle whose instructions have all arrived (404 unknown,
    409 `incomplete` before). The first time, PayeeWithheld for each payment left out."""
    cycle = await stored.cycle(tx.conn, cycle_id, for_update=True)
    count, total = await stored.received(tx.conn, cycle_id)
    cycle = payment_file.refuse_unless_complete(
        cycle_id, cycle, received=count, received_total=total
    )
    instructions = await stored.instructions(tx.conn, cycle_id)
    first = cycle.file_produced_at is None
    chosen = (
        instructions if first else _only(instructions, await stored.included(tx.conn, cycle_id))
    )
    outcomes = await _decide(tx, [s.instruction for s in chosen], vault=vault)
    rows = [o for o in outcomes.values() if isinstance(o, Row)]
    dropped = 0
    if first:
        await _withhold(tx, cycle_id, chosen, outcomes)
        withheld = len(outcomes) - len(rows)
    else:
        dropped = len(outcomes) - len(rows)
        withheld = len(instructions) - len(chosen)
    await stored.record_download(
        tx.conn,
        download_id=tx.new_id(),
        cycle_id=cycle_id,
        downloaded_by=downloaded_by,
        org=org,
        rows_written=len(rows),
        rows_dropped=dropped,
        at=tx.now(),
    )
    log.info(
        "payment_file_downloaded",
        cycle_id=str(cycle_id),
        downloaded_by=downloaded_by,
        org=org,
        rows=len(rows),
        withheld=withheld,
        dropped=dropped,
        first=first,
    )
    columns = payment_file.columns(s.instruction.modality for s in instructions)
    return PaymentFile(
        cycle_id=cycle_id,
        csv=payment_file.write_csv(rows, columns=columns),
        rows=len(rows),
        withheld=withheld,
        dropped=dropped,
        first=first,
    )


def _only(
    instructions: Sequence[stored.StoredInstruction], payment_ids: set[UUID]
) -> list[stored.StoredInstruction]:
    return [s for s in instructions if s.instruction.payment_id in payment_ids]


async def _decide(
    tx: Tx, instructions: Sequence[payment_file.Instruction], *, vault: Vault
) -> dict[UUID, Row | WithheldReason]:
    """Each payment's row or reason, its household (a merged one's survivor) decrypted in
    batches."""
    today = tx.now().date()
    decided: dict[UUID, Row | WithheldReason] = {}
    for start in range(0, len(instructions), BATCH):
        part = instructions[start : start + BATCH]
        payees = await stored.payees(tx.conn, sorted({i.household_id for i in part}))
        loaded = await repository.load_households(
            tx.conn, sorted(set(payees.values())), vault=vault
        )
        households: dict[UUID, Household] = {h.household_id: h for h in loaded}
        for instruction in part:
            payee = payees.get(instruction.household_id)
            household = households.get(payee) if payee is not None else None
            decided[instruction.payment_id] = payment_file.decide(
                instruction, household, today=today
            )
    return decided


async def _withhold(
    tx: Tx,
    cycle_id: UUID,
    instructions: Sequence[stored.StoredInstruction],
    outcomes: dict[UUID, Row | WithheldReason],
) -> None:
    """Keep the first file's decisions and publish PayeeWithheld for each payment left out,
    continuing the flow of its PaymentInstructed."""
    now = tx.now()
    decisions: list[tuple[UUID, UUID, str | None]] = []
    events: list[tuple[Event, Envelope | None]] = []
    for s in instructions:
        i = s.instruction
        outcome = outcomes[i.payment_id]
        reason = outcome if isinstance(outcome, WithheldReason) else None
        decisions.append((i.payment_id, i.household_id, reason.value if reason else None))
        if reason is not None:
            event = PayeeWithheld(
                payment_id=i.payment_id,
                cycle_id=cycle_id,
                household_id=i.household_id,
                reason=reason,
                withheld_at=now,
            )
            events.append((event, Envelope.model_validate_json(s.envelope)))
    await stored.insert_decisions(tx.conn, cycle_id, decisions, at=now)
    await tx.publish_many(events)


@dataclass(frozen=True)
class WithheldList:
    cycle_id: UUID
    file_produced_at: datetime
    items: list[stored.Withheld]


async def withheld(conn: Any, cycle_id: UUID) -> WithheldList:
    """The payments the cycle's first file left out, with why: 404 unknown cycle, 409
    `not_produced` before that file was written (who is withheld is decided then)."""
    cycle = await stored.cycle(conn, cycle_id)
    if cycle is None:
        count, _ = await stored.received(conn, cycle_id)
        if count == 0:
            raise NotFound(f"payment cycle {cycle_id} not found")
    if cycle is None or cycle.file_produced_at is None:
        raise Conflict(
            f"the provider's file of payment cycle {cycle_id} was not produced yet: who is"
            " withheld is decided when it first is (GET /payment-files/{cycle_id})",
            code="not_produced",
        )
    return WithheldList(
        cycle_id=cycle_id,
        file_produced_at=cycle.file_produced_at,
        items=await stored.withheld(conn, cycle_id),
    )
