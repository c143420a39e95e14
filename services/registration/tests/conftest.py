"""Fixtures for registration's integration tests: the service running in-process with a
database of its own on the real PostgreSQL, and the event log of the real broker.

Unit tests use none of these, so they start nothing.
"""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Callable
from datetime import date, timedelta
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
from aidmesh_registration.app import build_app
from aidmesh_registration.crypto import new_kek
from aidmesh_registration.settings import RegistrationSettings
from aidmesh_runtime.auth import (
    REGISTRATION_INTAKE,
    REGISTRATION_READ,
    REGISTRATION_READ_ALL,
    REGISTRATION_REVIEW,
    REGISTRATION_WRITE,
)
from aidmesh_runtime.testing import (
    EventLog,
    auth_headers,
    event_log,
    isolated_settings,
    running_app,
    service_database,
)
from httpx import AsyncClient

#: The test client's token is a registration officer's of DRC's field office (the partner
#: of household_body): what it records is attributed to DRC. It works on IOM's registration
#: desk, so it reads every household and submission (registration:read-all); what a
#: partner's own token may read is test_need_to_know.py's subject. Other callers (a
#: reviewer, a Kobo partner, another organisation) send their own token (fixtures below).
OFFICE = "DRC"
OFFICER_SCOPES = (REGISTRATION_READ, REGISTRATION_READ_ALL, REGISTRATION_WRITE)


#: The key this test session shares with "other agencies" (issue 24): made for it alone.
INTERAGENCY_KEY = base64.b64encode(os.urandom(32)).decode()


@pytest.fixture(scope="module")
def settings() -> RegistrationSettings:
    # A key-encryption key made for this module's database only (never one in the repo).
    return isolated_settings(
        RegistrationSettings, kek=new_kek("test"), interagency_key=INTERAGENCY_KEY
    )


@pytest.fixture(scope="module")
async def database(settings: RegistrationSettings) -> AsyncIterator[asyncpg.Connection]:
    """The service's own database, read as an administrator would (never written)."""
    async with service_database(settings) as database:
        yield database.conn


@pytest.fixture(scope="module")
async def registration(
    settings: RegistrationSettings, database: asyncpg.Connection
) -> AsyncIterator[AsyncClient]:
    headers = auth_headers(*OFFICER_SCOPES, org=OFFICE, sub="user:registration-officer")
    async with running_app(build_app(settings), headers=headers) as client:
        yield client


@pytest.fixture
def reviewer() -> dict[str, str]:
    """Headers of IOM's registration team reviewing the duplicate queue."""
    return auth_headers(
        REGISTRATION_READ,
        REGISTRATION_READ_ALL,
        REGISTRATION_REVIEW,
        org="IOM-REG",
        sub="user:reviewer",
    )


@pytest.fixture
def as_org() -> Callable[..., dict[str, str]]:
    """`as_org("NRC", *scopes)`: headers of that organisation's token (default: a Kobo
    partner's, registration:intake only)."""

    def headers(org: str, *scopes: str) -> dict[str, str]:
        return auth_headers(*(scopes or (REGISTRATION_INTAKE,)), org=org, sub=f"partner:{org}")

    return headers


@pytest.fixture(scope="module")
async def events() -> AsyncIterator[EventLog]:
    async with event_log() as log:
        yield log


def kobo_submission(**answers: Any) -> dict[str, Any]:
    """A submission of our Kobo registration form as Kobo's REST Services post it: a mother,
    her son and her father, in Kharkiv; `answers` replace or add questions."""
    instance = uuid4()
    return {
        "_id": 48211,
        "_uuid": str(instance),
        "formhub/uuid": "4ac0b37c5a3c4c2c9b6fb1d1f4d0a0a1",
        "start": "2026-01-12T10:02:11.000+02:00",
        "end": "2026-01-12T10:19:40.000+02:00",
        "today": "2026-01-12",
        "__version__": "vGh7Nq2dE4pXbQ",
        "consent/registration": "yes",
        "consent/data_sharing": "yes",
        "consent/referral": "no",
        "location/adm1": "UA63",
        "location/adm2": "UA6312",
        "location/adm3": "UA6312001",
        "location/address": "вул. Героїв Праці, 12, кв. 7, Харків",
        "household/displacement_status": "idp",
        "household/phone": "067 555 12 34",
        "household/vulnerabilities": "chronic_illness",
        "head/family_name": "Гончаренко",
        "head/given_name": "Людмила",
        "head/patronymic": "Олексіївна",
        "head/sex": "female",
        "head/dob": "1981-03-14",
        "head/document_type": "passport",
        "head/document_number": "МК 417 305",
        "head/member_flags": "",
        "members": [
            {
                "members/family_name": "Гончаренко",
                "members/given_name": "Богдан",
                "members/patronymic": "Ігорович",
                "members/sex": "male",
                "members/dob": "2011-07-22",
                "members/relation": "child",
            },
            {
                "members/family_name": "Литвиненко",
                "members/given_name": "Олексій",
                "members/patronymic": "Степанович",
                "members/sex": "male",
                "members/dob": "1949-11-02",
                "members/relation": "parent",
                "members/member_flags": "disability",
            },
        ],
        "needs/shelter_severity": "4",
        "needs/shelter_damage": "medium",
        "needs/shelter_tenure": "owner",
        "needs/shelter_heating": "no",
        "needs/health_severity": "3",
        "needs/health_services": "mhpss chronic_disease_care",
        "meta/instanceID": f"uuid:{instance}",
        "_xform_id_string": "aTEr5MZHhLfRW7bDZXrxZ4",
        "_submission_time": "2026-01-12T08:20:11",
        "_status": "submitted_via_web",
        "_submitted_by": None,
        "_attachments": [],
        "_geolocation": [None, None],
        "_tags": [],
        "_notes": [],
        "_validation_status": {},
    } | answers


@pytest.fixture
def kobo() -> Callable[..., dict[str, Any]]:
    """`kobo(**answers)`: a fresh Kobo submission (its own instanceID) with those answers."""
    return kobo_submission


_SYLLABLES = ("бо", "ва", "ге", "да", "жу", "зі", "ка", "ле", "мо", "ни", "по", "ри", "су", "те")


def distinct_family_name() -> str:
    """A Cyrillic family name no other test uses (so dedup leaves unrelated tests alone)."""
    digits = uuid4().int
    syllables = []
    for _ in range(5):
        digits, index = divmod(digits, len(_SYLLABLES))
        syllables.append(_SYLLABLES[index])
    return "".join(syllables).capitalize() + "енко"


def distinct_phone() -> str:
    return f"+38067{uuid4().int % 10**7:07d}"


def distinct_passport() -> str:
    return f"ТТ{uuid4().int % 10**6:06d}"


_MOTHERS = ("Наталія", "Оксана", "Тетяна", "Ірина", "Світлана", "Галина", "Юлія", "Вікторія")
_DAUGHTERS = ("Єва", "Софія", "Злата", "Дарина", "Мирослава", "Поліна", "Уляна", "Ярина")


def household_body(**overrides: Any) -> dict[str, Any]:
    """A structured registration (a mother and her daughter) whose names, birth dates, phone
    and passport no other test's resemble."""
    family = distinct_family_name()
    draw = uuid4().int
    mother, daughter = _MOTHERS[draw % 8], _DAUGHTERS[(draw >> 3) % 8]
    # The mother 25-55 and the daughter 1-15 years old, whenever the tests run.
    born = date.today() - timedelta(days=25 * 366 + (draw >> 6) % (30 * 365))
    child_born = date.today() - timedelta(days=366 + (draw >> 30) % (14 * 365))
    return {
        "channel": "field_office",
        "partner_org": "DRC",
        "location": {"adm1_pcode": "UA63", "adm2_pcode": "UA6312", "adm3_pcode": "UA6312001"},
        "displacement_status": "idp",
        "address": "вул. Пушкінська, 54, кв. 19, Харків",
        "phone": distinct_phone(),
        "members": [
            {
                "family_name": family,
                "given_name": mother,
                "patronymic": "Юріївна",
                "sex": "female",
                "date_of_birth": born.isoformat(),
                "relation": "head",
                "documents": [{"kind": "passport", "number": distinct_passport()}],
            },
            {
                "family_name": family,
                "given_name": daughter,
                "patronymic": "Андріївна",
                "sex": "female",
                "date_of_birth": child_born.isoformat(),
                "relation": "child",
            },
        ],
        "consents": ["registration", "data_sharing"],
        "needs": [{"sector": "shelter", "severity": 3, "details": {"damage_level": "light"}}],
    } | overrides


@pytest.fixture
def body() -> Callable[..., dict[str, Any]]:
    """`body(**overrides)`: a registration no other test's resembles (see household_body)."""
    return household_body


@pytest.fixture
def names() -> Callable[[], str]:
    """`names()`: a Cyrillic family name no other test uses."""
    return distinct_family_name
