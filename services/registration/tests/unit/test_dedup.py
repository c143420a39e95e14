"""Duplicate detection: which earlier registrations may be the same household, and why."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any
from uuid import UUID, uuid4

import numpy as np
import pytest
from aidmesh_contracts import DuplicateReason
from aidmesh_registration.dedup import (
    THRESHOLD,
    Candidate,
    Person,
    blocking_keys,
    find_duplicates,
    match_indexed,
    match_pairs,
    profile,
)


def person(**overrides: Any) -> Person:
    values: dict[str, Any] = {
        "family_name": "Коваленко",
        "given_name": "Юрій",
        "patronymic": "Петрович",
        "birth_date": date(1984, 5, 3),
        "sex": "male",
        "documents": frozenset(),
    }
    return Person(**(values | overrides))


WIFE = person(given_name="Олена", patronymic="Іванівна", birth_date=date(1986, 7, 21), sex="female")
SON = person(given_name="Максим", patronymic="Юрійович", birth_date=date(2012, 11, 30))


def household(
    head: Person | None = None,
    others: tuple[Person, ...] = (WIFE, SON),
    *,
    household_id: UUID | None = None,
    adm1: str = "UA63",
    adm3: str | None = "UA6302001",
    phone: str | None = "+380501234567",
) -> Candidate:
    head = head or person()
    return Candidate(
        household_id=household_id or uuid4(),
        adm1_pcode=adm1,
        adm3_pcode=adm3,
        phone=phone,
        head=head,
        members=(head, *others),
    )


def latin(p: Person, **overrides: Any) -> Person:
    """The same person as a partner types them in Latin letters, without a patronymic."""
    spellings = {"Коваленко": "Kovalenko", "Юрій": "Yuriy", "Олена": "Olena", "Максим": "Maksym"}
    fields: dict[str, Any] = {
        "family_name": spellings[p.family_name],
        "given_name": spellings[p.given_name],
        "patronymic": None,
    }
    return dataclasses.replace(p, **(fields | overrides))


def only(matches: list[Any]) -> Any:
    assert len(matches) == 1, matches
    return matches[0]


def test_the_same_identity_document_is_a_certain_duplicate_whatever_the_names() -> None:
    earlier = household(person(documents=frozenset({"passport:ЕК123456"})))
    new = household(
        person(
            family_name="Шевченко", given_name="Петро", documents=frozenset({"passport:ЕК123456"})
        ),
        phone=None,
    )

    match = only(find_duplicates(new, [earlier]))

    assert match.score == 1.0
    assert DuplicateReason.SAME_DOCUMENT in match.reasons
    assert (match.household_id, match.candidate_household_id) == (
        new.household_id,
        earlier.household_id,
    )


def test_a_document_of_any_member_counts() -> None:
    wife = dataclasses.replace(WIFE, documents=frozenset({"id_card:123456789"}))
    earlier = household(others=(wife, SON), phone=None)
    new = household(person(given_name="Іван"), others=(wife,), phone=None, adm1="UA80")

    assert DuplicateReason.SAME_DOCUMENT in only(find_duplicates(new, [earlier])).reasons


def test_the_same_phone_with_a_similar_head_name_is_a_duplicate() -> None:
    earlier = household()
    new = household(latin(person(), birth_date=date(1990, 1, 1)), others=(), adm1="UA80", adm3=None)

    match = only(find_duplicates(new, [earlier]))

    assert DuplicateReason.SAME_PHONE_SIMILAR_NAME in match.reasons
    assert match.score >= 0.9


def test_the_same_phone_with_another_name_is_not_a_duplicate() -> None:
    # Relatives and neighbours share a phone; the phone alone proves nothing.
    earlier = household()
    new = household(
        person(family_name="Бондар", given_name="Василь", birth_date=date(1950, 2, 2)), others=()
    )

    assert find_duplicates(new, [earlier]) == []


def test_a_re_registration_in_latin_letters_without_patronymic_is_found() -> None:
    earlier = household()
    new = household(latin(person()), others=(latin(WIFE), latin(SON)), phone=None)

    match = only(find_duplicates(new, [earlier]))

    assert match.reasons >= {
        DuplicateReason.SIMILAR_NAME,
        DuplicateReason.SAME_BIRTH_DATE,
        DuplicateReason.SIMILAR_MEMBERS,
        DuplicateReason.SAME_LOCATION,
    }
    assert match.score >= THRESHOLD


def test_swapped_day_and_month_of_birth_is_named_as_such() -> None:
    earlier = household()
    new = household(person(birth_date=date(1984, 3, 5)), phone=None, adm3="UA6302003")

    match = only(find_duplicates(new, [earlier]))

    assert DuplicateReason.SWAPPED_DAY_MONTH in match.reasons
    assert DuplicateReason.SAME_BIRTH_DATE not in match.reasons
    assert DuplicateReason.SAME_LOCATION not in match.reasons


def test_a_typo_in_the_family_name_and_a_move_to_another_hromada_are_tolerated() -> None:
    earlier = household()
    new = household(person(family_name="Коваленкo"), phone=None, adm3="UA6304007")

    assert find_duplicates(new, [earlier]) != []


def test_family_and_given_names_entered_the_other_way_round_are_tolerated() -> None:
    earlier = household()
    new = household(person(family_name="Юрій", given_name="Коваленко"), phone=None)

    assert DuplicateReason.SIMILAR_NAME in only(find_duplicates(new, [earlier])).reasons


def test_twins_heading_their_own_households_are_not_duplicates() -> None:
    earlier = household()
    twin = person(given_name="Андрій", documents=frozenset({"passport:ЕК654321"}))
    sister_in_law = person(given_name="Ірина", patronymic="Олегівна", sex="female")
    new = household(twin, others=(sister_in_law,), phone="+380671112233")

    assert find_duplicates(new, [earlier]) == []


def test_a_twin_sister_with_an_almost_identical_name_is_not_a_duplicate() -> None:
    earlier = household(person(given_name="Олександр"), others=())
    new = household(person(given_name="Олександра", sex="female"), others=(), phone=None)

    assert find_duplicates(new, [earlier]) == []


def test_a_father_and_son_of_the_same_name_are_not_duplicates() -> None:
    earlier = household(person(patronymic="Іванович", birth_date=date(1958, 9, 14)), others=())
    son = person(birth_date=date(1984, 5, 3))
    new = household(son, others=(WIFE,), phone="+380931234567")

    assert find_duplicates(new, [earlier]) == []


def test_neighbours_with_a_common_surname_are_not_duplicates() -> None:
    earlier = household()
    new = household(
        person(given_name="Василь", patronymic="Миколайович", birth_date=date(1984, 8, 17)),
        others=(person(given_name="Галина", sex="female", birth_date=date(1985, 1, 9)),),
        phone="+380661234567",
    )

    assert find_duplicates(new, [earlier]) == []


def test_candidates_come_best_first_and_never_include_the_household_itself() -> None:
    new = household()
    weak = household(person(birth_date=date(1984, 3, 5)), others=(), phone=None, adm3=None)
    strong = household(person(documents=frozenset({"passport:АА000001"})))
    new = household(
        person(documents=frozenset({"passport:АА000001"})), household_id=new.household_id
    )

    matches = find_duplicates(new, [weak, new, strong])

    assert [m.candidate_household_id for m in matches] == [strong.household_id, weak.household_id]
    assert matches[0].score > matches[1].score


def test_no_candidates_no_matches() -> None:
    assert find_duplicates(household(), []) == []


def test_every_match_names_at_least_one_reason_and_a_score_between_0_and_1() -> None:
    earlier = household()
    variants = [
        household(latin(person()), others=(), phone=None),
        household(person(birth_date=date(1984, 3, 5)), phone=None),
        household(person(family_name="Kovalenko"), others=()),
        household(person(documents=frozenset({"passport:ЕК1"}))),
    ]
    earlier = household(person(documents=frozenset({"passport:ЕК1"})))

    for new in variants:
        for match in find_duplicates(new, [earlier]):
            assert match.reasons
            assert 0.0 <= match.score <= 1.0


@pytest.mark.parametrize(
    "variant",
    [
        lambda h: household(latin(h.head), others=(), phone=None, adm3=None),
        lambda h: household(person(birth_date=date(1984, 3, 5)), phone=None),
        lambda h: household(person(family_name="Каваленко"), phone=None),
        lambda h: household(person(given_name="Юрий"), phone=None),
        lambda h: household(person(birth_date=date(1985, 5, 3)), phone=None),
        lambda h: household(person(family_name="Бондар"), phone=h.phone),
        lambda h: household(person(family_name="Бондар", documents=frozenset({"passport:ЕК1"}))),
    ],
)
def test_a_duplicate_shares_a_blocking_key_with_the_household_it_repeats(variant: Any) -> None:
    earlier = household(person(documents=frozenset({"passport:ЕК1"})))
    new = variant(earlier)

    assert blocking_keys(new) & blocking_keys(earlier)


def test_blocking_keys_keep_oblasts_apart_for_names_without_the_same_birth_date() -> None:
    kharkiv = household(phone=None)
    kyiv = household(person(birth_date=date(1984, 3, 5)), adm1="UA80", adm3=None, phone=None)

    assert blocking_keys(kharkiv).isdisjoint(blocking_keys(kyiv))


def test_a_family_that_moved_to_another_oblast_is_a_candidate_and_found() -> None:
    """Same names and birth dates, another oblast, no phone or document in common."""
    earlier = household(phone=None)
    moved = household(adm1="UA80", adm3="UA8000000", phone="+380671112233")

    assert blocking_keys(moved) & blocking_keys(earlier)
    match = only(find_duplicates(moved, [earlier]))
    assert match.candidate_household_id == earlier.household_id
    assert match.score >= THRESHOLD


def test_match_pairs_compares_pairs_of_equal_length_lists() -> None:
    with pytest.raises(ValueError, match="pairs"):
        match_pairs([profile(household())], [])


def test_match_pairs_scores_each_pair_on_its_own() -> None:
    a, b, c = household(), household(phone=None), household(person(given_name="Іван"), others=())

    matches = match_pairs([profile(b), profile(c)], [profile(a), profile(a)])

    assert [m.household_id for m in matches] == [b.household_id]


def test_pairs_given_as_indexes_score_as_the_same_pairs_given_as_profiles() -> None:
    a = household(person(documents=frozenset({"passport:ЕК123456"})))
    b = household(phone=None)  # a duplicate of a
    c = household(person(family_name="Шевченко", documents=frozenset({"passport:ЕК123456"})))
    d = household(person(family_name="Шевченко", given_name="Петро"), others=())  # no one's
    profiles = [profile(h) for h in (a, b, c, d)]
    new, candidates = np.array([1, 2, 3, 3, 2]), np.array([0, 0, 0, 1, 1])

    for threshold in (THRESHOLD, 0.0):
        by_index = match_indexed(profiles, new, candidates, threshold=threshold)
        by_profile = match_pairs(
            [profiles[i] for i in new], [profiles[j] for j in candidates], threshold=threshold
        )

        assert by_index == by_profile
    assert [(m.household_id, m.candidate_household_id) for m in by_index] == [
        (b.household_id, a.household_id),
        (c.household_id, a.household_id),
        (d.household_id, a.household_id),
        (d.household_id, b.household_id),
        (c.household_id, b.household_id),
    ]
    matches = match_indexed(profiles, new, candidates)
    assert [(m.household_id, m.candidate_household_id) for m in matches] == [
        (b.household_id, a.household_id),
        (c.household_id, a.household_id),
    ]
