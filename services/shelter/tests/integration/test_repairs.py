"""Light and medium repairs on the real broker and database: the engineer assesses, the
coordinator plans within the cap, the engineer completes; assistance is delivered and the
case closes. Every refusal says why and leaves no trace."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

import pytest
from aidmesh_contracts import (
    AssistanceDelivered,
    DamageAssessed,
    DamageLevel,
    Location,
    Modality,
    RepairCategory,
    RepairCompleted,
    RepairPlanned,
    Sector,
    ShelterCaseClosed,
    ShelterCaseOpened,
)

pytestmark = pytest.mark.integration


async def test_an_engineer_s_assessment_publishes_the_damage_and_the_bill_of_quantities_total(
    flows, shelter
) -> None:
    case = await flows.open_case(DamageLevel.UNKNOWN)

    response = await flows.assess(case.case_id, "light")

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["estimated_cost_uah"], body["boq_lines"]) == (
        "assessed",
        "12100.00",
        2,
    )
    assert (body["cap_uah"], body["within_cap"]) == ("30000.00", True)
    assessed, seen = await flows.published(DamageAssessed, case_id=case.case_id)
    assert seen.envelope.causationid == case.opened.id
    assert seen.envelope.correlationid == case.registered.correlationid
    assert (assessed.damage_level, assessed.estimated_cost.amount, assessed.assessed_by) == (
        DamageLevel.LIGHT,
        Decimal("12100.00"),
        "ENG-KH-01",
    )
    detail = (await shelter.get(f"/cases/{case.case_id}")).json()
    assert (detail["status"], detail["damage_level"], detail["estimated_cost_uah"]) == (
        "assessed",
        "light",
        "12100.00",
    )
    assert [line["item_code"] for line in detail["boq"]] == [
        "window.pvc_double",
        "roof.metal_sheet",
    ]
    assert detail["boq"][0]["total_uah"] == "9600.00"


async def test_a_light_repair_is_assessed_planned_completed_and_delivered(flows) -> None:
    case = await flows.open_case(DamageLevel.LIGHT, size=4)
    assert (await flows.assess(case.case_id)).status_code == 200

    planned_response = await flows.plan(case.case_id, modality="in_kind")
    # IOM's coordinator records the repair NRC (the implementing partner) did.
    completed_response = await flows.complete(
        case.case_id, value_uah="11850.50", partner_org="NRC", headers=flows.coordinator()
    )

    assert planned_response.status_code == 200, planned_response.text
    assert planned_response.json() | {"priority": 0} == {
        "case_id": str(case.case_id),
        "category": "light",
        "modality": "in_kind",
        "budget_uah": "12100.00",
        "cap_uah": "30000.00",
        "priority": 0,
    }
    assert completed_response.status_code == 200, completed_response.text
    delivery_id = completed_response.json()["delivery_id"]
    _, assessed = await flows.published(DamageAssessed, case_id=case.case_id)
    planned, planned_seen = await flows.published(RepairPlanned, case_id=case.case_id)
    completed, completed_seen = await flows.published(RepairCompleted, case_id=case.case_id)
    delivered, delivered_seen = await flows.published(
        AssistanceDelivered, household_id=case.household.household_id
    )
    closed, closed_seen = await flows.published(ShelterCaseClosed, case_id=case.case_id)
    # One causation chain, in the household's flow.
    assert planned_seen.envelope.causationid == assessed.envelope.id
    assert completed_seen.envelope.causationid == planned_seen.envelope.id
    assert delivered_seen.envelope.causationid == completed_seen.envelope.id
    assert closed_seen.envelope.causationid == completed_seen.envelope.id
    for seen in (planned_seen, completed_seen, delivered_seen, closed_seen):
        assert seen.envelope.correlationid == case.registered.correlationid
    assert (planned.budget.amount, planned.cap.amount) == (Decimal("12100.00"), Decimal("30000.00"))
    assert (completed.category, completed.modality) == (RepairCategory.LIGHT, Modality.IN_KIND)
    assert str(delivered.delivery_id) == delivery_id
    assert delivered_seen.topic == "aidmesh.assistance.delivered.v1"
    assert (delivered.sector, delivered.activity, delivered.modality) == (
        Sector.SHELTER,
        "shelter.light_repair",
        Modality.IN_KIND,
    )
    assert delivered.value is not None and delivered.value.amount == Decimal("11850.50")
    assert (delivered.persons_reached, delivered.partner_org) == (4, "NRC")
    assert delivered.location == Location(adm1_pcode="UA63", adm2_pcode="UA6312")
    assert closed.reason_code == "repaired"
    row = await flows.case_row(case.case_id)
    assert (row["status"], str(row["delivery_id"]), row["repair_value"]) == (
        "repaired",
        delivery_id,
        Decimal("11850.50"),
    )


async def test_a_medium_repair_is_planned_in_kind_by_default_and_delivered_as_medium(
    flows,
) -> None:
    case = await flows.open_case(DamageLevel.MEDIUM)
    boq = [{"item_code": "wall.brick", "quantity": "40", "unit": "m2", "unit_cost_uah": "1500"}]
    assert (await flows.assess(case.case_id, "medium", boq)).status_code == 200

    planned = await flows.plan(case.case_id)
    completed = await flows.complete(case.case_id, value_uah="58000.00")

    assert planned.json()["modality"] == "in_kind"
    assert planned.json()["budget_uah"] == "60000.00"
    assert completed.status_code == 200, completed.text
    delivered, _ = await flows.published(
        AssistanceDelivered, household_id=case.household.household_id
    )
    assert delivered.activity == "shelter.medium_repair"


async def test_a_plan_over_the_cap_is_refused_with_the_cap_and_the_case_stays_assessed(
    flows,
) -> None:
    case = await flows.open_case(DamageLevel.LIGHT)
    expensive = [
        {"item_code": "roof.full", "quantity": "1", "unit": "lot", "unit_cost_uah": "30000.01"}
    ]
    assessed = await flows.assess(case.case_id, "light", expensive)
    assert assessed.json()["within_cap"] is False

    response = await flows.plan(case.case_id)

    assert response.status_code == 422
    assert response.json()["detail"] == (
        "budget 30000.01 UAH exceeds the light repair cap of 30000.00 UAH"
    )
    assert await flows.case_status(case.case_id) == "assessed"
    assert await flows.count(RepairPlanned, case_id=case.case_id) == 0
    lower = await flows.plan(case.case_id, budget_uah="30000.00")
    assert lower.status_code == 200, lower.text


async def test_a_repair_is_not_completed_before_it_is_planned(flows) -> None:
    case = await flows.open_case(DamageLevel.LIGHT)

    before_assessment = await flows.complete(case.case_id)
    await flows.assess(case.case_id)
    before_plan = await flows.complete(case.case_id)

    assert before_assessment.status_code == 409
    assert before_assessment.json()["detail"] == (
        f"case {case.case_id} is open, not planned: only a planned repair can be completed"
    )
    assert before_plan.status_code == 409
    assert "is assessed, not planned" in before_plan.json()["detail"]
    assert await flows.count(RepairCompleted, case_id=case.case_id) == 0
    assert await flows.count(AssistanceDelivered, household_id=case.household.household_id) == 0


async def test_a_second_completion_of_the_same_case_is_a_conflict(flows) -> None:
    case = await flows.planned_case()
    first = await flows.complete(case.case_id)
    assert first.status_code == 200, first.text

    second = await flows.complete(case.case_id)

    assert second.status_code == 409
    assert "is repaired, not planned" in second.json()["detail"]
    assert [
        p.envelope.type for p in await flows.outbox(correlation_id=case.registered.correlationid)
    ] == [
        ShelterCaseOpened.event_type,
        DamageAssessed.event_type,
        RepairPlanned.event_type,
        RepairCompleted.event_type,
        AssistanceDelivered.event_type,
        ShelterCaseClosed.event_type,
    ]


async def test_a_completion_above_the_planned_budget_or_without_inspection_is_refused(
    flows,
) -> None:
    case = await flows.planned_case()  # budget 12100.00

    over = await flows.complete(case.case_id, value_uah="12100.01")
    uninspected = await flows.complete(case.case_id, inspection_passed=False)
    other_modality = await flows.complete(case.case_id, modality="in_kind")

    assert over.status_code == 422
    assert over.json()["detail"] == "12100.01 UAH exceeds the planned budget of 12100.00 UAH"
    assert uninspected.status_code == 422
    assert "has not passed inspection" in uninspected.json()["detail"]
    assert other_modality.status_code == 422
    assert other_modality.json()["detail"] == "the repair was planned voucher, not in_kind"
    assert await flows.case_status(case.case_id) == "planned"
    assert await flows.count(RepairCompleted, case_id=case.case_id) == 0


async def test_a_completion_without_the_inspection_flag_names_the_missing_field(flows) -> None:
    case = await flows.planned_case()

    response = await flows.http.post(
        f"/cases/{case.case_id}/repair-completion", json={"value_uah": "1000.00"}
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "inspection_passed"]


async def test_repairs_are_not_planned_in_cash(flows) -> None:
    case = await flows.open_case(DamageLevel.LIGHT)
    await flows.assess(case.case_id)

    response = await flows.plan(case.case_id, modality="cash")

    assert response.status_code == 422
    assert response.json()["detail"] == "repairs are delivered in_kind or voucher, not cash"


async def test_a_case_of_an_unknown_id_is_not_found_for_any_step(flows) -> None:
    unknown = uuid4()

    for response in (
        await flows.assess(unknown),
        await flows.plan(unknown),
        await flows.complete(unknown),
    ):
        assert response.status_code == 404
        assert response.json() == {"detail": f"shelter case {unknown} not found"}


async def test_batch_planning_plans_an_oblast_s_most_vulnerable_households_first(
    flows, shelter
) -> None:
    volyn = Location(adm1_pcode="UA07")
    cases = {}
    for name, vulnerabilities in (
        ("plain", frozenset()),
        ("vulnerable", frozenset({"disability", "child_headed"})),
        ("elderly", frozenset({"elderly_headed"})),
    ):
        case = await flows.open_case(
            DamageLevel.LIGHT, severity=3, location=volyn, vulnerabilities=vulnerabilities
        )
        assert (await flows.assess(case.case_id)).status_code == 200  # 12100.00 each
        cases[name] = case.case_id

    response = await shelter.post(
        "/repair-plans", json={"oblast": "UA07", "envelope_uah": "25000.00"}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert [p["case_id"] for p in body["planned"]] == [
        str(cases["vulnerable"]),
        str(cases["elderly"]),
    ]
    assert body["stopped_at"]["case_id"] == str(cases["plain"])
    assert "exceeds the remaining envelope of 800.00 UAH" in body["stopped_at"]["reason"]
    assert body["remaining_uah"] == "800.00"
    assert await flows.case_status(cases["plain"]) == "assessed"
    planned = [p.event for p in await flows.outbox(RepairPlanned)]
    assert [p.case_id for p in planned if p.case_id in cases.values()] == [
        cases["vulnerable"],
        cases["elderly"],
    ]
