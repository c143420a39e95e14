"""Request bodies: JSON only, and no larger than the service accepts (413 / 415 with a
reason), whether the size is announced or the body comes in chunks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aidmesh_runtime.bodies import RequestBodyLimits
from fastapi import FastAPI

LIMIT = 2048


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    taken: list[Any] = []

    @app.post("/things")
    async def take(thing: dict[str, Any]) -> dict[str, int]:
        taken.append(thing)
        return {"kept": len(taken)}

    @app.post("/run")
    async def run() -> dict[str, str]:
        return {"ran": "yes"}

    app.add_middleware(RequestBodyLimits, max_bytes=LIMIT)
    app.state.taken = taken
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        client.taken = taken  # type: ignore[attr-defined]
        yield client


async def test_a_json_body_within_the_limit_is_taken(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", json={"note": "x" * 100})

    assert (response.status_code, response.json()) == (200, {"kept": 1})


async def test_a_body_announced_larger_than_the_limit_is_refused_naming_it(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/things", json={"note": "x" * (LIMIT + 1)})

    assert response.status_code == 413
    assert str(LIMIT) in response.json()["detail"]
    assert client.taken == []  # type: ignore[attr-defined]


async def test_a_chunked_body_larger_than_the_limit_is_refused_as_it_arrives(
    client: httpx.AsyncClient,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"note": "'
        for _ in range(10):
            yield b"x" * 512
        yield b'"}'

    response = await client.post(
        "/things", content=chunks(), headers={"content-type": "application/json"}
    )

    assert response.status_code == 413
    assert client.taken == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_a_body_that_is_not_json_is_refused_as_unsupported(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}

    response = await client.post("/things", content=b'{"note": "x"}', headers=headers)

    assert response.status_code == 415
    assert "JSON" in response.json()["detail"]


async def test_json_with_a_charset_and_an_empty_post_pass(client: httpx.AsyncClient) -> None:
    typed = await client.post(
        "/things", content=b"{}", headers={"content-type": "application/json; charset=utf-8"}
    )
    empty = await client.post("/run")

    assert (typed.status_code, empty.status_code) == (200, 200)
