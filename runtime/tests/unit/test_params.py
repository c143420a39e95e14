"""Shared query parameter types: bounded where PostgreSQL and date arithmetic are."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import httpx
import pytest
from aidmesh_runtime.params import Day, EachOnce, Offset, known_query_only
from fastapi import APIRouter, Depends, FastAPI
from pydantic import TypeAdapter, ValidationError

DAY = TypeAdapter(Day)


def test_a_day_is_read_from_its_iso_form() -> None:
    assert DAY.validate_python("2026-12-07") == date(2026, 12, 7)


@pytest.mark.parametrize(
    "text", ["0", "1700000000", "20261207", "2026-12-07T00:00:00", "9999-12-31"]
)
def test_a_unix_time_another_form_or_a_far_day_is_refused(text: str) -> None:
    with pytest.raises(ValidationError):
        DAY.validate_python(text)


CODES = TypeAdapter(Annotated[frozenset[str], EachOnce])


def test_a_set_sent_as_an_array_names_each_item_once() -> None:
    assert CODES.validate_python(["a", "b"]) == {"a", "b"}
    with pytest.raises(ValidationError, match="more than once"):
        CODES.validate_python(["a", "a"])


def _api() -> FastAPI:
    app = FastAPI()
    router = APIRouter(dependencies=[Depends(known_query_only)])

    @router.get("/cases")
    async def cases(status: str | None = None, offset: Offset = 0) -> dict[str, int]:
        return {"offset": offset}

    app.include_router(router)
    return app


async def test_a_query_parameter_the_endpoint_does_not_take_is_refused_by_name() -> None:
    transport = httpx.ASGITransport(app=_api())
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        assert (await client.get("/cases?status=open&offset=2")).json() == {"offset": 2}
        typo = await client.get("/cases?ofset=50")
    assert typo.status_code == 422
    assert typo.json()["detail"] == [
        {
            "loc": ["query", "ofset"],
            "msg": "unknown query parameter (this endpoint takes: offset, status)",
            "type": "extra_forbidden",
        }
    ]
