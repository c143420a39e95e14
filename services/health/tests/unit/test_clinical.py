"""Clinical records are sealed with AES-GCM: unreadable without the key, bound to their visit."""

from __future__ import annotations

import base64
import os
from uuid import uuid4

import pytest
from aidmesh_health.clinical import ClinicalCipher, ClinicalRecord
from cryptography.exceptions import InvalidTag

NOTE = "Пацієнтка скаржиться на безсоння; підозра на ПТСР"


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_a_sealed_record_opens_with_its_key_and_visit() -> None:
    cipher = ClinicalCipher(new_key())
    visit_id = uuid4()
    record = ClinicalRecord(notes=NOTE, diagnoses=("F43.1", "G47.0"))

    assert cipher.open(visit_id, cipher.seal(visit_id, record)) == record


def test_the_sealed_bytes_do_not_show_the_notes_or_diagnoses() -> None:
    sealed = ClinicalCipher(new_key()).seal(uuid4(), ClinicalRecord(NOTE, ("F43.1",)))

    assert NOTE.encode() not in sealed.data
    assert b"F43.1" not in sealed.data


def test_a_record_copied_onto_another_visit_does_not_open() -> None:
    cipher = ClinicalCipher(new_key())
    sealed = cipher.seal(uuid4(), ClinicalRecord(NOTE, ()))

    with pytest.raises(InvalidTag):
        cipher.open(uuid4(), sealed)


def test_after_a_key_rotation_old_records_still_open() -> None:
    old, new = new_key(), new_key()
    visit_id = uuid4()
    sealed = ClinicalCipher(old).seal(visit_id, ClinicalRecord(NOTE, ()))

    rotated = ClinicalCipher(new, previous=(old,))

    assert rotated.open(visit_id, sealed).notes == NOTE
    assert rotated.seal(visit_id, ClinicalRecord(NOTE, ())).key_id != sealed.key_id


def test_a_key_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        ClinicalCipher(base64.b64encode(b"short").decode())
