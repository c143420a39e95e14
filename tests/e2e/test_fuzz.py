"""Every service's HTTP API as an outside tester tries it: schemathesis, all its checks,
on the running services (issue 19).

Each service is called with a token holding every scope of that service (protection once
per role: caseworker, supervisor, auditor), so the generated calls reach the code behind
the scope check. What must hold for every generated call: no 5xx, every response (status,
headers, body) as the OpenAPI document says, invalid input (an unknown query parameter
too) refused with a 4xx, and what needs a token refused without one. The examples per operation are bounded so that the
suite fits `make test`; `AIDMESH_FUZZ_EXAMPLES` raises them for a longer hunt.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
import schemathesis
from aidmesh_runtime import auth
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import positive_data_acceptance

from .conftest import Platform

pytestmark = pytest.mark.e2e

#: Every check but one: "a call valid by the schema is accepted". The services' rules go
#: further than JSON Schema can say (an oblast P-code that exists, a family name or a full
#: name, consent to registration), and they answer such calls 422 naming the field and
#: the reason, as documented, which this check counts as a failure.
NOT_CHECKED = [positive_data_acceptance]
EXAMPLES = int(os.environ.get("AIDMESH_FUZZ_EXAMPLES", "12"))


def _scopes_of(service: str) -> tuple[str, ...]:
    return tuple(s for s in auth.SCOPES if s.startswith(f"{service}:"))


@dataclass(frozen=True)
class Caller:
    service: str
    scopes: tuple[str, ...]
    org: str = "IOM"

    @property
    def id(self) -> str:
        return f"{self.service}-as-{'+'.join(s.split(':')[1] for s in self.scopes)}"


CALLERS = [
    Caller("registration", _scopes_of("registration")),
    Caller("shelter", _scopes_of("shelter")),
    Caller("health", _scopes_of("health")),
    Caller("protection", (auth.PROTECTION_CASEWORKER,)),
    Caller("protection", (auth.PROTECTION_SUPERVISOR,)),
    Caller("protection", (auth.PROTECTION_AUDITOR,)),
    Caller("cash", _scopes_of("cash")),
    Caller("audit", _scopes_of("audit")),
]


def _operations(platform: Platform, caller: Caller) -> list[APIOperation]:
    schema = schemathesis.openapi.from_url(f"{platform.url(caller.service)}/openapi.json")
    # The token as the schema's own headers: schemathesis then sends it with every call
    # and keeps it out of the "invalid input" it generates (it still tries calls without).
    token = platform.token(*caller.scopes, org=caller.org, sub=f"user:fuzz-{caller.service}")
    schema.config.update(headers=token)
    return [result.ok() for result in schema.get_all_operations()]


def _fuzz(operation: APIOperation, mode: GenerationMode) -> str | None:
    """The first failure of `EXAMPLES` generated calls of one operation, or None."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
    )
    def calls(case: schemathesis.Case) -> None:
        case.call_and_validate(excluded_checks=NOT_CHECKED, timeout=30)

    try:
        calls()
    except Unsatisfiable:
        if mode is GenerationMode.NEGATIVE:
            return None  # it takes nothing that can be sent wrong (its token is not fuzzed)
        return f"{operation.label}: no valid call could be generated"
    except Exception as exc:  # every failure is reported, with the case that caused it
        return f"{operation.label} ({mode.value}): {exc}"
    return None


# The schemathesis pytest plugin's lazy schemas (`from_fixture`) fail under pytest 9
# (schemathesis 4.32.5 reads a private `_nodeid`), so each operation runs its own
# Hypothesis test here, positive and negative, and the test lists every failing one.
@pytest.mark.parametrize("caller", CALLERS, ids=lambda c: c.id)
def test_no_call_breaks_the_service_or_its_documented_answers(
    platform: Platform, caller: Caller
) -> None:
    operations = _operations(platform, caller)
    assert operations, "the OpenAPI document lists no operation"
    failures = [
        failure
        for operation in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        if (failure := _fuzz(operation, mode)) is not None
    ]
    assert not failures, "\n\n".join(failures)
