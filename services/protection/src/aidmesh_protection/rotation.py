"""Key rotation: re-seal every encrypted value under the current data key.

Rotate by making a new key current and listing the old one in the retired keys, restarting
the service, then running `python -m aidmesh_protection reencrypt`; once it reports no
value left behind, drop the retired key from the settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from .crypto import DecryptionFailed, Keyring
from .service import SAFE_CONTACT_FIELD, note_field


@dataclass
class Reencrypted:
    moved: int = 0
    #: (case ref, field) of values that would not open: tampered, or under an unknown key.
    unreadable: list[tuple[str, str]] = field(default_factory=list)


async def reencrypt(conn: asyncpg.Connection, keyring: Keyring) -> Reencrypted:
    """Re-seal, in one transaction, the values not sealed under the current key."""
    prefix = f"enc:v1:{keyring.current_id}:"
    result = Reencrypted()
    async with conn.transaction():
        notes = await conn.fetch(
            "SELECT note_id, case_ref, body FROM case_notes"
            " WHERE left(body, length($1)) <> $1 FOR UPDATE",
            prefix,
        )
        for row in notes:
            name = note_field(row["note_id"])
            sealed = _reseal(keyring, row["body"], case_ref=row["case_ref"], field_name=name)
            if sealed is None:
                result.unreadable.append((row["case_ref"], name))
                continue
            await conn.execute(
                "UPDATE case_notes SET body = $2 WHERE note_id = $1", row["note_id"], sealed
            )
            result.moved += 1
        contacts = await conn.fetch(
            "SELECT case_ref, safe_contact FROM protection_cases WHERE safe_contact IS NOT NULL"
            " AND left(safe_contact, length($1)) <> $1 FOR UPDATE",
            prefix,
        )
        for row in contacts:
            sealed = _reseal(
                keyring,
                row["safe_contact"],
                case_ref=row["case_ref"],
                field_name=SAFE_CONTACT_FIELD,
            )
            if sealed is None:
                result.unreadable.append((row["case_ref"], SAFE_CONTACT_FIELD))
                continue
            await conn.execute(
                "UPDATE protection_cases SET safe_contact = $2 WHERE case_ref = $1",
                row["case_ref"],
                sealed,
            )
            result.moved += 1
    return result


def _reseal(keyring: Keyring, token: str, *, case_ref: str, field_name: str) -> str | None:
    try:
        plaintext = keyring.open(token, case_ref=case_ref, field_name=field_name)
    except DecryptionFailed:
        return None
    return keyring.seal(plaintext, case_ref=case_ref, field_name=field_name)


async def reencrypt_database(dsn: str, keyring: Keyring) -> Reencrypted:
    conn = await asyncpg.connect(dsn)
    try:
        return await reencrypt(conn, keyring)
    finally:
        await conn.close()
