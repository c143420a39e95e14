"""Kobo submissions become registrations; what cannot be mapped says which question and why."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aidmesh_contracts import Channel, ConsentPurpose, DamageLevel, Sector, Vulnerability
from aidmesh_registration import kobo as form
from aidmesh_registration.domain import Document, DocumentKind

Kobo = Callable[..., dict[str, Any]]


def reasons(answers: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(form.Unmappable) as caught:
        form.to_household(answers, partner_org="NRC")
    return {r.field: r.reason for r in caught.value.reasons}


def test_a_submission_becomes_a_kobo_registration_of_the_partner(kobo: Kobo) -> None:
    household = form.to_household(kobo(), partner_org="NRC")

    assert (household.channel, household.partner_org) == (Channel.KOBO, "NRC")
    assert household.location.adm3_pcode == "UA6312001"
    assert household.phone == "+380675551234"
    assert household.consents == {ConsentPurpose.REGISTRATION, ConsentPurpose.DATA_SHARING}
    assert household.vulnerabilities == {Vulnerability.CHRONIC_ILLNESS}


def test_the_head_comes_first_and_the_repeat_group_gives_the_other_members(kobo: Kobo) -> None:
    head, son, father = form.to_household(kobo(), partner_org="NRC").members

    assert (head.relation, head.family_name, head.given_name) == ("head", "Гончаренко", "Людмила")
    assert head.all_documents() == (Document(DocumentKind.PASSPORT, "МК417305"),)
    assert (son.relation, son.given_name, str(son.date_of_birth)) == (
        "child",
        "Богдан",
        "2011-07-22",
    )
    assert father.vulnerabilities == {Vulnerability.DISABILITY}


def test_each_sector_with_a_severity_becomes_a_need_with_its_details(kobo: Kobo) -> None:
    needs = {n.sector: n for n in form.to_household(kobo(), partner_org="NRC").needs}

    assert set(needs) == {Sector.SHELTER, Sector.HEALTH}
    shelter = needs[Sector.SHELTER]
    assert shelter.severity == 4
    assert shelter.details is not None
    assert shelter.details.damage_level is DamageLevel.MEDIUM  # type: ignore[union-attr]
    assert shelter.details.heating_available is False  # type: ignore[union-attr]
    assert needs[Sector.HEALTH].details.services_needed == {  # type: ignore[union-attr]
        "mhpss",
        "chronic_disease_care",
    }


def test_the_instance_id_is_the_submission_id_and_the_deprecated_id_what_it_edits(
    kobo: Kobo,
) -> None:
    meta = form.meta(kobo(**{"meta/instanceID": "uuid:b2", "meta/deprecatedID": "uuid:a1"}))

    assert (meta.submission_id, meta.replaces) == ("uuid:b2", "uuid:a1")
    assert meta.submitted_at == datetime(2026, 1, 12, 8, 20, 11, tzinfo=UTC)  # Kobo writes UTC
    assert meta.form_id == "aTEr5MZHhLfRW7bDZXrxZ4"


def test_without_an_instance_id_the_uuid_names_the_submission(kobo: Kobo) -> None:
    answers = kobo()
    del answers["meta/instanceID"]

    assert form.meta(answers).submission_id == f"uuid:{answers['_uuid']}"


def test_a_submission_without_any_id_is_named_by_its_content_so_a_resend_is_recognised(
    kobo: Kobo,
) -> None:
    answers = kobo()
    del answers["meta/instanceID"], answers["_uuid"]

    first, again = form.meta(answers), form.meta(dict(answers))

    assert first.submission_id.startswith("sha256:")
    assert first.submission_id == again.submission_id
    assert (
        form.meta(answers | {"household/phone": "0671112233"}).submission_id != first.submission_id
    )


def test_missing_answers_are_reported_by_question(kobo: Kobo) -> None:
    answers = kobo()
    del answers["location/adm1"], answers["location/adm2"], answers["location/adm3"]
    del answers["household/displacement_status"]

    found = reasons(answers)

    assert found == {
        "location/adm1": "Field required",
        "household/displacement_status": "Field required",
    }


def test_a_refusal_names_the_question_of_the_repeat_entry_and_never_the_answer(kobo: Kobo) -> None:
    answers = kobo()
    answers["members"][1]["members/dob"] = "2090-01-01"
    answers["household/phone"] = "12"

    found = reasons(answers)

    assert found["members[2]/dob"] == "Date should be in the past"
    assert "phone number" in found["household/phone"]
    assert "2090" not in str(found) and "'12'" not in str(found)


def test_a_wrong_passport_number_is_reported_on_the_document_question(kobo: Kobo) -> None:
    found = reasons(kobo(**{"head/document_number": "12-34"}))

    assert list(found) == ["head/document_number"]
    assert "two Cyrillic letters and six digits" in found["head/document_number"]


def test_without_consent_to_registration_nothing_is_registered(kobo: Kobo) -> None:
    found = reasons(kobo(**{"consent/registration": "no", "consent/data_sharing": "no"}))

    assert list(found) == ["consent/registration"]


def test_an_unknown_choice_is_reported_with_the_choices(kobo: Kobo) -> None:
    found = reasons(kobo(**{"needs/shelter_damage": "destroyed"}))

    assert found == {
        "needs/shelter_damage": "Input should be 'light', 'medium', 'heavy' or 'unknown'"
    }


def test_every_question_the_mapping_reads_is_listed_once() -> None:
    assert len(form.QUESTIONS) == len(set(form.QUESTIONS))
    assert "head/dob" in form.QUESTIONS and "members/relation" in form.QUESTIONS
