"""The registry's rules: names and documents, the screening, what an update changed, and how
a merge treats members and consent. Pure: no database, no broker, no clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from aidmesh_contracts import ConsentPurpose, Vulnerability
from aidmesh_registration import dedup
from aidmesh_registration.domain import (
    ConsentRecord,
    Document,
    DocumentKind,
    Household,
    HouseholdIn,
    HouseholdPatch,
    Names,
    Refused,
    ScreeningLevel,
    apply_patch,
    changes,
    consents_after_merge,
    documents_to_carry,
    household_updated,
    infer_document,
    name_keys,
    normalise_document,
    screening_of,
    split_full_name,
)
from pydantic import ValidationError

NOW = datetime(2026, 1, 12, 8, 24, tzinfo=UTC)
TODAY = NOW.date()


def member(relation: str = "head", **overrides: Any) -> dict[str, Any]:
    return {
        "family_name": "Коваленко",
        "given_name": "Олена",
        "patronymic": "Петрівна",
        "sex": "female",
        "date_of_birth": "1984-05-03",
        "relation": relation,
        "documents": [{"kind": "passport", "number": "ЕК123456"}],
    } | overrides


def submission(**overrides: Any) -> dict[str, Any]:
    return {
        "channel": "field_office",
        "location": {"adm1_pcode": "UA63", "adm2_pcode": "UA6312", "adm3_pcode": "UA6312001"},
        "displacement_status": "idp",
        "phone": "050 123 45 67",
        "members": [
            member(),
            member(
                "child",
                given_name="Андрій",
                patronymic="Іванович",
                sex="male",
                date_of_birth="2012-09-01",
                documents=[],
            ),
        ],
        "consents": ["registration"],
    } | overrides


def refusal(data: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as caught:
        HouseholdIn.model_validate(data)
    return caught.value.errors()


def household(**overrides: Any) -> Household:
    registration = HouseholdIn.model_validate(submission(**overrides))
    return registration.to_household(
        household_id=uuid4(),
        member_ids=[uuid4() for _ in registration.members],
        registered_at=NOW,
    )


# ---- names ------------------------------------------------------------------------------


def test_a_full_name_is_read_given_patronymic_family_as_our_forms_write_it() -> None:
    names = split_full_name("Олена Петрівна Коваленко")

    assert (names.given, names.patronymic, names.family) == ("Олена", "Петрівна", "Коваленко")


def test_a_full_name_copied_from_a_passport_is_read_family_given_patronymic() -> None:
    names = split_full_name("Коваленко Олена Петрівна")

    assert (names.given, names.patronymic, names.family) == ("Олена", "Петрівна", "Коваленко")


def test_two_words_are_a_given_name_and_a_family_name() -> None:
    names = split_full_name("Тарас Шевчук-Затонський")

    assert (names.given, names.patronymic, names.family) == ("Тарас", None, "Шевчук-Затонський")


def test_an_older_client_sending_full_name_and_document_number_is_still_understood() -> None:
    legacy = {
        "full_name": "Ярослава Богданівна Шевчук-Затонська",
        "sex": "female",
        "date_of_birth": "1979-11-04",
        "relation": "head",
        "document_number": "ЕН987654",
    }

    [head] = HouseholdIn.model_validate(submission(members=[legacy])).members

    assert (head.family_name, head.given_name, head.patronymic) == (
        "Шевчук-Затонська",
        "Ярослава",
        "Богданівна",
    )
    [document] = head.all_documents()
    assert document == Document(DocumentKind.PASSPORT, "ЕН987654")
    assert head.to_member(uuid4()).full_name == "Ярослава Богданівна Шевчук-Затонська"


def test_the_latin_form_of_each_name_is_the_official_transliteration() -> None:
    [head, _] = household().members

    latin = head.latin()

    assert (latin.family, latin.given, latin.patronymic) == ("Kovalenko", "Olena", "Petrivna")


def test_names_in_latin_letters_are_kept_as_a_partners_list_gives_them() -> None:
    latin = member(family_name="Kovalenko", given_name="Olena", patronymic="Petrivna")
    [head] = household(members=[latin]).members

    assert (head.family_name, head.given_name, head.patronymic) == (
        "Kovalenko",
        "Olena",
        "Petrivna",
    )
    assert head.latin() == Names(family="Kovalenko", given="Olena", patronymic="Petrivna")
    assert set(head.name_keys()) >= set(name_keys("Коваленко", "Олена"))  # found either way


@pytest.mark.parametrize("written", ["Šewčenko", "O'Neil-Smith", "Jurij"])
def test_older_and_foreign_romanisations_are_names_too(written: str) -> None:
    [head] = household(members=[member(family_name=written)]).members

    assert head.family_name == written


def test_a_word_mixing_latin_and_cyrillic_letters_is_refused_as_a_typing_error() -> None:
    errors = refusal(submission(members=[member(family_name="Kоваленко")]))  # a Latin K

    assert errors[0]["loc"] == ("members", 0, "family_name")
    assert "one script per word" in errors[0]["msg"]
    assert "оваленко" not in errors[0]["msg"]


def test_a_latin_full_name_written_family_name_first_is_split_by_its_patronymic() -> None:
    names = split_full_name("Kovalenko Olena Petrivna")

    assert names == Names(family="Kovalenko", given="Olena", patronymic="Petrivna")


def test_a_member_without_a_family_name_is_refused_naming_the_fields() -> None:
    errors = refusal(submission(members=[member(family_name=None)]))

    assert errors[0]["loc"] == ("members", 0)
    assert "family_name and given_name are required" in errors[0]["msg"]


def test_a_one_word_full_name_is_refused() -> None:
    legacy = {"full_name": "Олена", "sex": "female", "date_of_birth": "1984-05-03"}
    errors = refusal(submission(members=[legacy | {"relation": "head"}]))

    assert errors[0]["loc"] == ("members", 0, "full_name")
    assert "at least a given name and a family name" in errors[0]["msg"]


def test_name_keys_find_a_compound_family_name_by_either_part_in_either_script() -> None:
    keys = name_keys("Шевчук-Затонська", "Ярослава")

    assert set(name_keys("Shevchuk")) <= set(keys)
    assert set(name_keys("Затонська")) <= set(keys)
    assert set(name_keys("Yaroslava")) <= set(keys)


def test_a_households_dedup_profile_is_the_profile_of_its_dedup_candidate() -> None:
    for found in (
        household(),
        household(phone=None, location={"adm1_pcode": "UA63"}),
        household(
            members=[
                member("spouse", given_name="Юрій", sex="male", patronymic=None, documents=[]),
                member(date_of_birth="1984-03-05"),
                member("child", given_name="Ілля", date_of_birth="2020-12-12"),
            ]
        ),
    ):
        assert found.profile() == dedup.profile(found.candidate())


def test_a_date_of_birth_in_the_future_is_refused() -> None:
    tomorrow = (date.today() + timedelta(days=1)).isoformat()

    errors = refusal(submission(members=[member(date_of_birth=tomorrow)]))

    assert errors[0]["loc"] == ("members", 0, "date_of_birth")
    assert errors[0]["type"] == "date_past"


# ---- documents ---------------------------------------------------------------------------


def test_a_passport_series_typed_in_latin_look_alikes_is_stored_in_cyrillic() -> None:
    assert normalise_document(DocumentKind.PASSPORT, "ek 123456") == "ЕК123456"


def test_an_idp_certificate_without_its_hyphen_gets_it() -> None:
    assert normalise_document(DocumentKind.IDP_CERTIFICATE, "63017001234567") == "6301-7001234567"


@pytest.mark.parametrize(
    ("kind", "number", "rule"),
    [
        (DocumentKind.PASSPORT, "ЕК12345", "two Cyrillic letters and six digits"),
        (DocumentKind.ID_CARD, "12345678", "nine digits"),
        (DocumentKind.IDP_CERTIFICATE, "6301-123", "four digits, a hyphen and ten digits"),
    ],
)
def test_a_document_number_of_the_wrong_format_is_refused_with_its_rule(
    kind: DocumentKind, number: str, rule: str
) -> None:
    with pytest.raises(ValueError, match=rule):
        normalise_document(kind, number)


def test_a_document_number_without_its_kind_is_recognised_by_its_format() -> None:
    assert infer_document("123456789") == (DocumentKind.ID_CARD, "123456789")
    assert infer_document("АА000111") == (DocumentKind.PASSPORT, "АА000111")


def test_a_document_error_names_the_number_field_of_that_document() -> None:
    bad = member(documents=[{"kind": "id_card", "number": "12"}])

    errors = refusal(submission(members=[bad]))

    assert errors[0]["loc"] == ("members", 0, "documents", 0, "number")
    assert "nine digits" in errors[0]["msg"]


# ---- households --------------------------------------------------------------------------


def test_the_phone_is_stored_in_e164() -> None:
    assert HouseholdIn.model_validate(submission()).phone == "+380501234567"


def test_a_hromada_code_implies_its_raion_and_oblast() -> None:
    location = HouseholdIn.model_validate(submission(location={"adm3_pcode": "UA6312001"})).location

    assert (location.adm1_pcode, location.adm2_pcode) == ("UA63", "UA6312")


def test_a_hromada_outside_its_raion_is_refused() -> None:
    errors = refusal(
        submission(
            location={"adm1_pcode": "UA63", "adm2_pcode": "UA6312", "adm3_pcode": "UA6314001"}
        )
    )

    assert errors[0]["loc"] == ("location",)
    assert "not inside UA6312" in errors[0]["msg"]


def test_a_malformed_raion_code_is_refused_naming_it() -> None:
    errors = refusal(submission(location={"adm1_pcode": "UA63", "adm2_pcode": "UA63-12"}))

    assert errors[0]["loc"] == ("location", "adm2_pcode")


def test_size_may_be_left_out_and_follows_the_members() -> None:
    assert HouseholdIn.model_validate(submission()).size == 2


def test_a_household_flag_is_not_a_member_flag() -> None:
    errors = refusal(submission(members=[member(vulnerabilities=["large_family"])]))

    assert errors[0]["loc"] == ("members", 0, "vulnerabilities")


# ---- screening ---------------------------------------------------------------------------


def test_the_screening_adds_what_the_members_show_to_the_declared_flags() -> None:
    elderly_disabled_head = member(date_of_birth="1950-01-20", vulnerabilities=["disability"])
    screened = screening_of(
        HouseholdIn.model_validate(
            submission(members=[elderly_disabled_head], vulnerabilities=["chronic_illness"])
        ),
        today=TODAY,
    )

    assert screened.flags == {
        Vulnerability.CHRONIC_ILLNESS,
        Vulnerability.DISABILITY,
        Vulnerability.ELDERLY_HEADED,
        Vulnerability.FEMALE_HEADED,
    }
    assert screened.score == 2 + 3 + 2 + 1
    assert screened.level is ScreeningLevel.HIGH


def test_three_children_make_a_large_family() -> None:
    children = [
        member("child", given_name=name, date_of_birth=born, documents=[])
        for name, born in (("Марко", "2012-01-01"), ("Ліна", "2014-02-02"), ("Ія", "2019-03-03"))
    ]
    man = member(sex="male", given_name="Іван", patronymic="Петрович")

    screened = screening_of(
        HouseholdIn.model_validate(submission(members=[man, *children])), today=TODAY
    )

    assert Vulnerability.LARGE_FAMILY in screened.flags
    assert Vulnerability.FEMALE_HEADED not in screened.flags


def test_a_child_alone_is_an_unaccompanied_minor_heading_the_household() -> None:
    child = member(date_of_birth="2012-09-01", documents=[])

    screened = screening_of(HouseholdIn.model_validate(submission(members=[child])), today=TODAY)

    assert {Vulnerability.CHILD_HEADED, Vulnerability.UNACCOMPANIED_MINOR} <= screened.flags


# ---- updates -----------------------------------------------------------------------------


def test_a_move_changes_the_location_only() -> None:
    before = household()
    patch = HouseholdPatch.model_validate({"location": {"adm1_pcode": "UA80"}})

    after = apply_patch(before, patch, new_member_id=uuid4)

    assert changes(before, after, today=TODAY) == {"location"}


def test_a_new_phone_is_a_change_of_contact_and_is_not_shared() -> None:
    before = household()
    after = apply_patch(
        before, HouseholdPatch.model_validate({"phone": "067 765 43 21"}), new_member_id=uuid4
    )

    changed = changes(before, after, today=TODAY)
    updated = household_updated(
        after, changed=changed, now=NOW, channel=before.channel, partner_org=None
    )

    assert changed == {"contact"}
    assert after.phone == "+380677654321"
    assert "765" not in updated.model_dump_json()


def test_a_newborn_changes_size_composition_and_members() -> None:
    before = household()
    listed = [
        {**member(), "member_id": str(before.members[0].member_id)},
        {
            **member(
                "child",
                given_name="Андрій",
                patronymic="Іванович",
                sex="male",
                date_of_birth="2012-09-01",
                documents=[],
            ),
            "member_id": str(before.members[1].member_id),
        },
        member(
            "child",
            given_name="Софія",
            patronymic="Іванівна",
            date_of_birth="2025-12-30",
            documents=[],
        ),
    ]

    after = apply_patch(
        before, HouseholdPatch.model_validate({"members": listed}), new_member_id=uuid4
    )

    assert changes(before, after, today=TODAY) == {"size", "composition", "members"}
    assert [m.member_id for m in after.members[:2]] == [m.member_id for m in before.members]


def test_restating_the_same_members_with_their_ids_changes_nothing() -> None:
    before = household()
    listed = [
        {**member(), "member_id": str(before.members[0].member_id)},
        {
            **member(
                "child",
                given_name="Андрій",
                patronymic="Іванович",
                sex="male",
                date_of_birth="2012-09-01",
                documents=[],
            ),
            "member_id": str(before.members[1].member_id),
        },
    ]

    after = apply_patch(
        before, HouseholdPatch.model_validate({"members": listed}), new_member_id=uuid4
    )

    assert changes(before, after, today=TODAY) == frozenset()


def test_a_member_id_from_another_household_is_refused() -> None:
    stranger = {**member(), "member_id": str(uuid4())}

    with pytest.raises(Refused) as caught:
        apply_patch(
            household(), HouseholdPatch.model_validate({"members": [stranger]}), new_member_id=uuid4
        )

    assert caught.value.loc == ("body", "members", 0, "member_id")


def test_a_patch_cannot_clear_the_location() -> None:
    with pytest.raises(ValidationError) as caught:
        HouseholdPatch.model_validate({"location": None})

    assert caught.value.errors()[0]["loc"] == ("location",)
    assert "cannot be cleared" in caught.value.errors()[0]["msg"]


def test_a_patch_needs_exactly_one_head_among_the_members_it_lists() -> None:
    with pytest.raises(ValidationError) as caught:
        HouseholdPatch.model_validate({"members": [member("spouse")]})

    assert caught.value.errors()[0]["loc"] == ("members",)
    assert "found 0" in caught.value.errors()[0]["msg"]


# ---- merges ------------------------------------------------------------------------------


def test_a_merged_registration_gives_its_documents_to_the_same_person_in_the_survivor() -> None:
    survivor = household()
    theirs = household(
        members=[member(documents=[{"kind": "idp_certificate", "number": "6301-7001234567"}])]
    )

    carried = documents_to_carry(survivor, theirs)

    assert [(m.member_id, d) for m, d in carried] == [
        (survivor.members[0].member_id, Document(DocumentKind.IDP_CERTIFICATE, "6301-7001234567"))
    ]


def test_a_different_person_in_the_merged_registration_gives_nothing() -> None:
    survivor = household()
    theirs = household(
        members=[
            member(
                given_name="Ірина",
                date_of_birth="1990-01-01",
                documents=[{"kind": "id_card", "number": "123456789"}],
            )
        ]
    )

    assert documents_to_carry(survivor, theirs) == []


def consent(
    household_id: UUID,
    purpose: str,
    at: datetime,
    *,
    withdrawn: datetime | None = None,
    recipient: str | None = None,
) -> ConsentRecord:
    return ConsentRecord(
        consent_id=uuid4(),
        household_id=household_id,
        purpose=ConsentPurpose(purpose),
        recorded_by="NRC",
        recorded_at=at,
        withdrawn_by="NRC" if withdrawn else None,
        withdrawn_at=withdrawn,
        ended_reason="withdrawn" if withdrawn else None,
        recipient=recipient,
    )


def test_consent_given_only_in_the_merged_registration_moves_to_the_survivor() -> None:
    survivor, merged = uuid4(), uuid4()
    given = consent(merged, "data_sharing", NOW)

    plan = consents_after_merge([consent(survivor, "registration", NOW)], [given])

    assert plan.record == [given]
    assert plan.withdraw == []


def test_a_later_withdrawal_in_the_merged_registration_withdraws_the_survivors_consent() -> None:
    survivor, merged = uuid4(), uuid4()
    ours = consent(survivor, "referral", NOW - timedelta(days=10))
    theirs = consent(merged, "referral", NOW - timedelta(days=5), withdrawn=NOW - timedelta(days=1))

    plan = consents_after_merge([ours], [theirs])

    assert plan.withdraw == [(ours, theirs)]
    assert plan.record == []


def test_consent_given_after_an_older_withdrawal_elsewhere_stands() -> None:
    survivor, merged = uuid4(), uuid4()
    ours = consent(survivor, "referral", NOW)
    theirs = consent(merged, "referral", NOW - timedelta(days=5), withdrawn=NOW - timedelta(days=1))

    plan = consents_after_merge([ours], [theirs])

    assert plan.withdraw == [] and plan.record == []


def test_consent_withdrawn_in_the_survivor_is_not_revived_by_an_older_one() -> None:
    survivor, merged = uuid4(), uuid4()
    withdrawn = consent(survivor, "data_sharing", NOW - timedelta(days=3), withdrawn=NOW)
    older = consent(merged, "data_sharing", NOW - timedelta(days=9))

    plan = consents_after_merge([withdrawn], [older])

    assert plan.record == [] and plan.withdraw == []


def test_consent_to_share_with_a_provider_moves_to_a_survivor_that_shares_in_general() -> None:
    survivor, merged = uuid4(), uuid4()
    ours = consent(survivor, "data_sharing", NOW)
    theirs = consent(merged, "data_sharing", NOW - timedelta(days=2), recipient="privatbank")

    plan = consents_after_merge([ours], [theirs])

    assert plan.record == [theirs] and plan.withdraw == []


def test_withdrawing_one_providers_consent_leaves_the_general_one_after_a_merge() -> None:
    survivor, merged = uuid4(), uuid4()
    general = consent(survivor, "data_sharing", NOW - timedelta(days=10))
    provider = consent(survivor, "data_sharing", NOW - timedelta(days=10), recipient="privatbank")
    withdrawn = consent(
        merged,
        "data_sharing",
        NOW - timedelta(days=5),
        withdrawn=NOW - timedelta(days=1),
        recipient="privatbank",
    )

    plan = consents_after_merge([general, provider], [withdrawn])

    assert plan.withdraw == [(provider, withdrawn)] and plan.record == []


def test_merged_members_keep_their_ids_when_nothing_moves() -> None:
    survivor = household()

    assert documents_to_carry(survivor, replace(survivor, household_id=uuid4())) == []
