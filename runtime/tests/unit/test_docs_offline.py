"""/docs works without internet: Swagger UI's script and style come from the service."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import ClassVar

import httpx
from aidmesh_runtime.service import create_service_app
from aidmesh_runtime.settings import ServiceSettings


class DocsSettings(ServiceSettings):
    service_name: ClassVar[str] = "docs-tests"


async def test_the_docs_page_loads_its_script_and_style_from_the_service_itself() -> None:
    app = create_service_app(
        settings=DocsSettings(),
        migrations=Path(tempfile.mkdtemp(prefix="aidmesh-docs-")),
        title="docs test",
        description="Docs without a CDN.",
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        page = (await client.get("/docs")).text
        assets = re.findall(r'(?:src|href)="([^"]+)"', page)

        assert assets, page
        assert not [a for a in assets if a.startswith(("http:", "https:", "//"))], assets
        for asset in assets:
            served = await client.get(asset)
            assert served.status_code == 200, asset
        script = next(a for a in assets if a.endswith("swagger-ui-bundle.js"))
        assert b"SwaggerUIBundle" in (await client.get(script)).content
