"""`python -m aidmesh_registration`: run the service.

python -m aidmesh_registration                  # serve (needs its KEK, see README)
python -m aidmesh_registration new-kek KEK_ID   # print a new KEK, `KEK_ID:<base64>`
python -m aidmesh_registration new-interagency-key  # a key to share with other agencies
python -m aidmesh_registration rebuild-blocking-keys  # after dedup's keys changed
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys

import asyncpg
from aidmesh_runtime.db import all_migrations, migrate
from aidmesh_runtime.keys import KeyConfigError
from aidmesh_runtime.service import serve
from rich.progress import Progress

from .app import build_app
from .crypto import new_kek
from .settings import RegistrationSettings


async def _rebuild_blocking_keys(settings: RegistrationSettings) -> int:
    from .app import MIGRATIONS  # the service's own migrations, in its composition root
    from .backfill import rebuild_blocking_keys

    vault = settings.vault()
    conn = await asyncpg.connect(settings.database_dsn)
    try:
        await migrate(conn, all_migrations(settings.service_name, MIGRATIONS))
        total = await conn.fetchval("SELECT count(*) FROM households WHERE status = 'active'")
        with Progress() as progress:
            task = progress.add_task("blocking keys", total=total)
            return await rebuild_blocking_keys(
                conn, vault, progress=lambda n: progress.advance(task, n)
            )
    finally:
        await conn.close()


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "serve"
    try:
        if command == "serve" and len(argv) <= 1:
            serve(build_app, RegistrationSettings)
            return 0
        if command == "new-kek" and len(argv) == 2:
            print(new_kek(argv[1]))
            return 0
        if command == "new-interagency-key" and len(argv) == 1:
            print(base64.b64encode(os.urandom(32)).decode())
            return 0
        if command == "rebuild-blocking-keys" and len(argv) == 1:
            done = asyncio.run(_rebuild_blocking_keys(RegistrationSettings()))
            print(f"registration: blocking keys rebuilt for {done:,} households")
            return 0
    except KeyConfigError as exc:  # the KEK or the inter-agency key: never the key itself
        print(f"registration: {exc}", file=sys.stderr)
        return 2
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
