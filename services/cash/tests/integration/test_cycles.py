"""Multi-purpose cash on the real broker and database: entitlements from registration's
events, a cycle opened, approved by a second person, paid, and reconciled; one MPCA per
household per month. Each test pays in an oblast of its own."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from aidmesh_contracts import (
    AssistanceDelivered,
    AssistanceOverlapFound,
    HouseholdMerged,
    Location,
    Modality,
    Money,
    PayeeWithheld,
    PaymentConfirmed,
    PaymentCycleApproved,
    PaymentFailed,
    PaymentInstructed,
    Sector,
    WithheldReason,
)
from aidmesh_runtime.auth import CASH_APPROVE, CASH_READ, CASH_WRITE
from aidmesh_runtime.testing import auth_headers, publish

pytestmark = pytest.mark.integration


async def test_a_cash_need_entitles_its_household_and_says_why(flows) -> None:
    household_id = await flows.entitled_household("UA05", size=7)
    refused, registered = await flows.register("UA05", displacement_status="host_community")
    await flows.cash_need(refused.household_id, severity=2, caused_by=registered)
    await flows.decided(refused.household_id)

    entitled = (await flows.http.get(f"/households/{household_id}/entitlement")).json()
    not_entitled = (await flows.http.get(f"/households/{refused.household_id}/entitlement")).json()

    assert (entitled["eligible"], entitled["monthly_amount_uah"]) == (True, "18000.00")
    assert entitled["explanation"]["amount"]["members_paid"] == 5  # the size cap
    assert entitled["explanation"]["inputs"]["size"] == 7
    assert (not_entitled["eligible"], not_entitled["monthly_amount_uah"]) == (False, "0.00")
    assert {r["code"] for r in not_entitled["explanation"]["reasons"]} == {
        "severity_below_threshold",
        "displacement_status_not_eligible",
    }
    unknown = await flows.http.get(f"/households/{uuid4()}/entitlement")
    assert unknown.status_code == 404


async def test_a_cycle_is_approved_by_a_second_person_and_instructs_its_payments(flows) -> None:
    first = await flows.entitled_household("UA07", vulnerabilities=frozenset({"disability"}))
    second = await flows.entitled_household("UA07")
    beyond_budget = await flows.entitled_household("UA07", size=2)

    # 3 months x 4 persons x 3600 = 43,200 each; the budget pays two of them.
    opened = await flows.open_cycle("UA07", budget_uah="90000.00")
    assert opened.status_code == 201, opened.text
    cycle = opened.json()
    assert (cycle["proposed"], cycle["waiting"]) == (
        {"households": 2, "total_uah": "86400.00"},
        {"households": 1, "total_uah": "21600.00"},
    )
    lines = await flows.lines(cycle["cycle_id"])
    assert [(li["household_id"], li["status"], li["rank"]) for li in lines] == [
        (str(first), "proposed", 1),  # the disability flag puts it first
        (str(second), "proposed", 2),
        (str(beyond_budget), "waiting", 3),
    ]

    by_opener = await flows.approve(
        cycle["cycle_id"],
        headers=auth_headers(CASH_READ, CASH_WRITE, CASH_APPROVE, sub="user:cash-officer"),
    )
    assert by_opener.status_code == 403, by_opener.text
    assert "second person" in by_opener.json()["detail"]
    approved = await flows.approve(cycle["cycle_id"])
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["payments"]) == ("approved", 2)
    again = await flows.approve(cycle["cycle_id"])
    assert again.status_code == 409

    instructed = {
        event.household_id: (envelope, event)
        for envelope, event in await flows.published(PaymentInstructed)
        if str(event.cycle_id) == cycle["cycle_id"]
    }
    assert set(instructed) == {first, second}
    envelope, payment = instructed[first]
    assert (payment.amount.amount, payment.first_month, payment.months) == (
        Decimal("43200.00"),
        "2027-02",
        3,
    )
    # The payment continues the household's flow: caused by its cash need.
    need_envelope = await flows.database.conn.fetchval(
        "SELECT need_envelope->>'id' FROM entitlements WHERE household_id = $1", first
    )
    assert str(envelope.causationid) == need_envelope
    [(_, summary)] = [
        (e, ev)
        for e, ev in await flows.published(PaymentCycleApproved)
        if str(ev.cycle_id) == cycle["cycle_id"]
    ]
    assert (summary.payments, summary.total.amount) == (2, Decimal("86400.00"))
    await flows.events.wait_for(
        bool,
        select=lambda seen: seen.envelope is not None and seen.envelope.id == envelope.id,
        timeout_s=flows.wait_s,
        what="PaymentInstructed on Kafka",
    )


async def test_a_household_gets_one_mpca_per_month_whichever_cycle_pays_it(flows) -> None:
    household_id = await flows.entitled_household("UA12")
    await flows.approved_cycle("UA12", first_month="2027-03", months=3)

    overlapping = (await flows.open_cycle("UA12", first_month="2027-05", months=2)).json()
    later = (await flows.open_cycle("UA12", first_month="2027-06", months=1)).json()

    [held] = await flows.lines(overlapping["cycle_id"])
    assert (held["household_id"], held["status"], held["reason"]) == (
        str(household_id),
        "held",
        "already_assisted_in_period",
    )
    assert "already has MPCA" in held["reason_text"]
    [proposed] = await flows.lines(later["cycle_id"])
    assert proposed["status"] == "proposed"


async def test_two_cycles_proposing_the_same_household_pay_it_once(flows) -> None:
    household_id = await flows.entitled_household("UA14")
    one = (await flows.open_cycle("UA14")).json()
    other = (await flows.open_cycle("UA14")).json()

    assert (await flows.approve(one["cycle_id"])).status_code == 200
    approved_other = await flows.approve(other["cycle_id"])

    assert approved_other.status_code == 200, approved_other.text
    assert approved_other.json()["payments"] == 0
    [held] = await flows.lines(other["cycle_id"])
    assert (held["household_id"], held["reason"]) == (
        str(household_id),
        "already_assisted_in_period",
    )


async def test_shelter_s_rental_assistance_in_the_same_months_is_flagged(flows) -> None:
    renting = await flows.entitled_household("UA18")
    rent = AssistanceDelivered(
        delivery_id=uuid4(),
        household_id=renting,
        sector=Sector.SHELTER,
        activity="shelter.rental_assistance",
        modality=Modality.CASH,
        quantity=Decimal(3),
        unit="month",
        value=Money(amount=Decimal("13500.00")),
        persons_reached=4,
        partner_org="IOM",
        location=Location(adm1_pcode="UA18"),
        delivered_at=datetime(2027, 1, 15, 10, tzinfo=UTC),  # January to March
    )
    await publish(flows.producer, rent)
    await flows.database.eventually(
        "SELECT 1 FROM other_assistance WHERE delivery_id = $1",
        rent.delivery_id,
        timeout_s=flows.wait_s,
        what="the rental assistance noted",
    )

    cycle = (await flows.open_cycle("UA18", first_month="2027-03", months=2)).json()

    lines = {UUID(li["household_id"]): li for li in await flows.lines(cycle["cycle_id"])}
    assert lines[renting]["status"] == "proposed"
    assert list(lines[renting]["flags"]) == ["shelter_rental_assistance_same_months"]


async def test_merged_households_are_paid_once(flows) -> None:
    survivor = await flows.entitled_household("UA21")
    duplicate = await flows.entitled_household("UA21")
    await flows.approved_cycle("UA21", first_month="2027-02", months=1)
    merged = HouseholdMerged(
        household_id=survivor,
        merged_household_id=duplicate,
        merged_at=datetime.now(UTC),
        decided_by="IOM-REG",
    )
    await publish(flows.producer, merged)
    await flows.database.eventually(
        "SELECT 1 FROM household_projection WHERE household_id = $1 AND merged_into = $2",
        duplicate,
        survivor,
        timeout_s=flows.wait_s,
        what="the merge projected",
    )

    cycle = (await flows.open_cycle("UA21", first_month="2027-02", months=2)).json()

    # One line for the two registrations, held: each was paid for February.
    [line] = await flows.lines(cycle["cycle_id"])
    assert (line["household_id"], line["status"], line["reason"]) == (
        str(survivor),
        "held",
        "already_assisted_in_period",
    )


async def test_a_report_confirms_paid_payments_fails_others_and_refuses_unknown_rows(
    flows,
) -> None:
    paid_household = await flows.entitled_household("UA23")
    failed_household = await flows.entitled_household("UA23")
    cycle = await flows.approved_cycle("UA23", first_month="2027-02", months=1)
    payments = {
        event.household_id: event
        for _, event in await flows.published(PaymentInstructed)
        if str(event.cycle_id) == cycle["cycle_id"]
    }
    paid, failed = payments[paid_household], payments[failed_household]
    unknown = uuid4()
    rows = [
        f"{paid.payment_id},paid,14400.00,2027-02-03T12:00:00+02:00,",
        f"{failed.payment_id},failed,0,,account_closed",
        f"{unknown},paid,14400.00,2027-02-03T12:00:00+02:00,",
    ]

    response = await flows.report(cycle["cycle_id"], rows, control_total=Decimal("28800.00"))

    assert response.status_code == 201, response.text
    result = response.json()
    assert (result["paid"], result["failed"], result["paid_total_uah"]) == (1, 1, "14400.00")
    assert result["refused"] == [
        {
            "line": 4,
            "payment_id": str(unknown),
            "reason": "unknown_payment",
            "message": "no such payment in the cycle",
        }
    ]
    assert result["reconciled"] is False
    [delivered] = [
        event
        for _, event in await flows.published(AssistanceDelivered)
        if event.delivery_id in (paid.payment_id, failed.payment_id)
    ]
    assert (delivered.delivery_id, delivered.activity, delivered.value.amount) == (
        paid.payment_id,
        "cash.mpca",
        Decimal("14400.00"),
    )
    assert (delivered.household_id, delivered.persons_reached) == (paid_household, 4)
    assert [e.payment_id for _, e in await flows.published(PaymentConfirmed)] == [paid.payment_id]
    [(_, failure)] = [
        (e, ev) for e, ev in await flows.published(PaymentFailed) if ev.cycle_id == failed.cycle_id
    ]
    assert (failure.payment_id, failure.reason, failure.next_step) == (
        failed.payment_id,
        "account_closed",
        "retry_next_cycle",
    )

    # The failed household's month is free again: the next cycle proposes it; the paid one
    # is held.
    retry = (await flows.open_cycle("UA23", first_month="2027-02", months=1)).json()
    lines = {UUID(li["household_id"]): li["status"] for li in await flows.lines(retry["cycle_id"])}
    assert lines == {paid_household: "held", failed_household: "proposed"}

    # The same file again answers the first result; a new file naming them again is refused.
    assert (await flows.report(cycle["cycle_id"], rows, Decimal("28800.00"))).json() == result
    again = await flows.report(cycle["cycle_id"], rows[:1], Decimal("14400.00"))
    assert [r["reason"] for r in again.json()["refused"]] == ["already_reported"]


async def test_a_report_whose_rows_miss_its_control_total_changes_nothing(flows) -> None:
    household_id = await flows.entitled_household("UA26")
    cycle = await flows.approved_cycle("UA26", first_month="2027-02", months=1)
    payment = await flows.payment_of(household_id)

    response = await flows.report(
        cycle["cycle_id"],
        [f"{payment.payment_id},paid,14400.00,2027-02-03T12:00:00+02:00,"],
        control_total=Decimal("99999.00"),
    )

    assert response.status_code == 422, response.text
    assert response.json()["detail"]["reason"] == "control_total_mismatch"
    status = await flows.database.conn.fetchval(
        "SELECT status FROM payments WHERE payment_id = $1", payment.payment_id
    )
    assert status == "instructed"


async def test_only_an_approved_cycle_takes_a_report(flows) -> None:
    await flows.entitled_household("UA32")
    cycle = (await flows.open_cycle("UA32")).json()

    response = await flows.report(cycle["cycle_id"], [], control_total=Decimal("0"))

    assert response.status_code == 409, response.text
    assert response.json()["detail"]["reason"] == "not_approved"


async def test_another_agency_s_cash_for_the_same_months_holds_the_household(flows) -> None:
    household_id = await flows.entitled_household("UA35")
    elsewhere_later = await flows.entitled_household("UA35")
    for assisted, first_month in ((household_id, "2027-03"), (elsewhere_later, "2027-09")):
        overlap = AssistanceOverlapFound(
            overlap_id=uuid4(),
            household_id=assisted,
            list_id=uuid4(),
            agency="UNHCR",
            sector=Sector.CASH,
            first_month=first_month,
            months=2,
            found_at=datetime.now(UTC),
        )
        await publish(flows.producer, overlap)
        await flows.database.eventually(
            "SELECT 1 FROM agency_overlaps WHERE overlap_id = $1",
            overlap.overlap_id,
            timeout_s=flows.wait_s,
            what="the overlap noted",
        )

    cycle = (await flows.open_cycle("UA35", first_month="2027-02", months=3)).json()

    lines = {UUID(li["household_id"]): li for li in await flows.lines(cycle["cycle_id"])}
    assert (lines[household_id]["status"], lines[household_id]["reason"]) == (
        "held",
        "assisted_by_another_agency",
    )
    assert lines[elsewhere_later]["status"] == "proposed"  # September is not in the cycle


async def test_a_payee_registration_withholds_is_not_paid_and_its_months_are_free(flows) -> None:
    household_id = await flows.entitled_household("UA44")
    cycle = await flows.approved_cycle("UA44", first_month="2027-02", months=1)
    payment = await flows.payment_of(household_id)

    withheld = PayeeWithheld(
        payment_id=payment.payment_id,
        cycle_id=payment.cycle_id,
        household_id=household_id,
        reason=WithheldReason.NO_BANK_ACCOUNT,
        withheld_at=datetime.now(UTC),
    )
    await publish(flows.producer, withheld)
    await flows.database.eventually(
        "SELECT 1 FROM payments WHERE payment_id = $1 AND status = 'withheld'",
        payment.payment_id,
        timeout_s=flows.wait_s,
        what="the payment withheld",
    )

    [line] = await flows.lines(cycle["cycle_id"])
    assert (line["payment_id"], line["payment_status"]) == (str(payment.payment_id), "withheld")
    retry = (await flows.open_cycle("UA44", first_month="2027-02", months=1)).json()
    [again] = await flows.lines(retry["cycle_id"])
    assert again["status"] == "proposed"


async def test_an_unclaimed_payment_is_offered_again_flagged_to_switch_modality(flows) -> None:
    household_id = await flows.entitled_household("UA46")
    cycle = await flows.approved_cycle("UA46", first_month="2027-02", months=1)
    payment = await flows.payment_of(household_id)

    reported = await flows.report(
        cycle["cycle_id"], [f"{payment.payment_id},unclaimed,0,,"], control_total=Decimal(0)
    )

    assert (reported.status_code, reported.json()["unclaimed"]) == (201, 1), reported.text
    [(_, unclaimed)] = [
        (e, ev)
        for e, ev in await flows.published(PaymentFailed)
        if ev.payment_id == payment.payment_id
    ]
    assert (unclaimed.outcome, unclaimed.next_step) == ("unclaimed", "switch_modality")
    same = (await flows.open_cycle("UA46", first_month="2027-02", months=1)).json()
    other = (
        await flows.open_cycle("UA46", first_month="2027-02", months=1, modality="cash_pickup")
    ).json()
    [again] = await flows.lines(same["cycle_id"])
    [switched] = await flows.lines(other["cycle_id"])
    assert (again["status"], list(again["flags"])) == (
        "proposed",
        ["unclaimed_before_by_this_modality"],
    )
    assert (switched["status"], switched["flags"]) == ("proposed", {})
