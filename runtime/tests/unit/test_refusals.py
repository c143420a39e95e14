"""One error model for every service's use cases (aidmesh_runtime.rules): each refusal has
its HTTP status and the same `detail` shapes, also when a service's error class derives from
ValueError as well (so it can be raised in a validator)."""

from __future__ import annotations

import pytest
from aidmesh_runtime.rules import Conflict, Forbidden, Gone, NotFound, Refusal, RuleRefused


class SectorRuleError(ValueError, RuleRefused):
    """As a service declares its rule errors."""


class WrongState(SectorRuleError, Conflict):
    pass


@pytest.mark.parametrize(
    ("refusal", "status", "detail"),
    [
        (NotFound("case 7 not found"), 404, "case 7 not found"),
        (Gone("household 9 was erased"), 410, "household 9 was erased"),
        (
            Forbidden("only the case's caseworker", code="forbidden"),
            403,
            {"reason": "forbidden", "message": "only the case's caseworker"},
        ),
        (
            Conflict("no consent to referral", code="consent_missing"),
            409,
            {"reason": "consent_missing", "message": "no consent to referral"},
        ),
        (
            RuleRefused("is not a team this service knows", field="team_code"),
            422,
            [
                {
                    "loc": ["body", "team_code"],
                    "msg": "is not a team this service knows",
                    "type": "value_error",
                }
            ],
        ),
        (
            RuleRefused("is not a cursor this list gave out", field=("query", "cursor"), code="x"),
            422,
            [
                {
                    "loc": ["query", "cursor"],
                    "msg": "is not a cursor this list gave out",
                    "type": "x",
                }
            ],
        ),
        (SectorRuleError("over the repair cap"), 422, "over the repair cap"),
        (WrongState("the case is closed"), 409, "the case is closed"),
    ],
)
def test_each_refusal_has_its_status_and_detail(
    refusal: Refusal, status: int, detail: object
) -> None:
    assert refusal.status == status
    assert refusal.detail() == detail


def test_a_service_rule_error_is_still_a_value_error_for_validators() -> None:
    assert isinstance(SectorRuleError("x"), ValueError)
    assert isinstance(WrongState("x"), RuleRefused)
