"""Query parameter types every service's API shares, bounded where the database is.

An unbounded `int` or `date` from a query string reaches SQL or date arithmetic as it is:
`offset=9223372036854775808` failed in asyncpg ("value out of int64 range") and
`from=9999-12-31` overflowed a `date + timedelta`, both as 500s (issue 19). These types
refuse such values at the door with a 422 naming the parameter, the same in every service.

    async def list_cases(offset: Offset = 0, ...)
    async def capacity(day_from: Annotated[Day | None, Query(alias="from")] = None, ...)
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Query, Request
from fastapi import params as fastapi_params
from fastapi.dependencies.utils import get_flat_params
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BeforeValidator, Field

#: A positive amount of hryvnias in a request body (a budget, a cap, a value), two decimals.
Uah = Annotated[
    Decimal,
    Field(
        gt=0,
        max_digits=14,
        decimal_places=2,
        description="UAH, as a decimal string.",
        examples=["12500.00"],
    ),
]

#: PostgreSQL's bigint: the largest id or row count a query can take.
BIGINT_MAX = 2**63 - 1
#: The days a programme's records can be about (visits, deliveries, reports): wide enough
#: for any real one, narrow enough that a week or a year added to it stays a date.
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2199, 12, 31)

_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_day(value: Any) -> Any:
    # pydantic reads "0" or "1700000000" as a Unix time; a day in a URL is YYYY-MM-DD only.
    if isinstance(value, str) and not _ISO_DAY.fullmatch(value):
        raise ValueError("a day is written YYYY-MM-DD")
    return value


#: A day given as YYYY-MM-DD, between FIRST_DAY and LAST_DAY.
Day = Annotated[
    date,
    BeforeValidator(_iso_day),
    Field(ge=FIRST_DAY, le=LAST_DAY, description="A day, YYYY-MM-DD.", examples=["2026-12-07"]),
]


def _each_once(value: Any) -> Any:
    if isinstance(value, list):
        try:
            repeated = len(set(value)) != len(value)
        except TypeError:  # items that are not hashable: the set's own validation answers
            return value
        if repeated:
            raise ValueError("lists an item more than once")
    return value


#: A set sent as a JSON array names each item once, as its schema says (`uniqueItems`):
#: `Annotated[frozenset[Code], EachOnce]`. pydantic would drop a repeat silently.
EachOnce = BeforeValidator(_each_once)

#: Rows of a listing to skip.
Offset = Annotated[int, Query(ge=0, le=BIGINT_MAX, description="Rows to skip.")]
#: Rows after this id (keyset paging).
AfterId = Annotated[int, Query(ge=0, le=BIGINT_MAX, description="Rows after this id.")]


async def known_query_only(request: Request) -> None:
    """422 for a query parameter the endpoint does not take, naming it and the ones it does.

    Starlette ignores unknown parameters, so a typo (`?ofset=50`, `?staus=open`) answered a
    full, unfiltered listing as if it were the one asked for. Installed on every service's
    API by the service factory."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = _query_names(route)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        raise RequestValidationError(
            [
                {
                    "loc": ("query", name),
                    "msg": f"unknown query parameter (this endpoint takes: {takes})",
                    "type": "extra_forbidden",
                }
                for name in unknown
            ]
        )


def _query_names(route: APIRoute) -> frozenset[str]:
    # Worked out once per route and kept on it (routes are not hashable).
    names: frozenset[str] | None = getattr(route, "_aidmesh_query_names", None)
    if names is None:
        names = frozenset(
            field.alias
            for field in get_flat_params(route.dependant)
            if isinstance(field.field_info, fastapi_params.Query)
        )
        route._aidmesh_query_names = names  # type: ignore[attr-defined]
    return names
