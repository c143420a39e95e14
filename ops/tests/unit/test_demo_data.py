"""The demo's synthetic households: valid for registration, realistic, reproducible."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest
from aidmesh_ops.demo_data import (
    OBLASTS,
    RELATIONS,
    VULNERABILITIES,
    DemoHousehold,
    fathers,
    generate_households,
    with_shelter_showcase,
    with_winterization_kits,
)

TODAY = date(2026, 11, 23)
DOCUMENT = re.compile(r"^[A-ZА-ЯІЇЄҐ0-9-]{6,20}$")
PHONE = re.compile(r"^\+380\d{9}$")
WORD = r"[А-ЯІЇЄҐ][а-яіїєґʼ’']+(?:-[А-ЯІЇЄҐ][а-яіїєґʼ’']+)?"
CYRILLIC_NAME = re.compile(rf"^{WORD} {WORD} {WORD}$")


@pytest.fixture(scope="module")
def households() -> list[DemoHousehold]:
    return generate_households(300, seed=7, today=TODAY)


def test_the_same_seed_gives_the_same_households() -> None:
    first = generate_households(36, seed=42, today=TODAY)
    again = generate_households(36, seed=42, today=TODAY)
    assert [h.registration_body() for h in first] == [h.registration_body() for h in again]
    assert [h.repair for h in first] == [h.repair for h in again]


def test_another_seed_gives_other_households() -> None:
    first = generate_households(10, seed=1, today=TODAY)
    other = generate_households(10, seed=2, today=TODAY)
    assert [h.registration_body() for h in first] != [h.registration_body() for h in other]


def test_households_satisfy_the_registration_rules(households: list[DemoHousehold]) -> None:
    pcodes = {o.pcode for o in OBLASTS}
    for household in households:
        body = household.registration_body()
        assert 1 <= body["size"] <= 6
        assert body["size"] == len(body["members"])
        assert [m["relation"] for m in body["members"]].count("head") == 1
        assert all(m["relation"] in RELATIONS for m in body["members"])
        assert "registration" in body["consents"]
        assert set(body["consents"]) <= {"registration", "data_sharing", "referral"}
        sectors = [n["sector"] for n in body["needs"]]
        assert len(sectors) == len(set(sectors)), "at most one need per sector"
        assert body["location"]["adm1_pcode"] in pcodes
        assert set(body["vulnerabilities"]) <= set(VULNERABILITIES)
        for member in body["members"]:
            assert member["document_number"] is None or DOCUMENT.match(member["document_number"])
            assert date.fromisoformat(member["date_of_birth"]) < TODAY
        if body["phone"] is not None:
            assert PHONE.match(body["phone"])
        assert (body["partner_org"] is not None) == (body["channel"] == "partner")


def test_every_household_has_at_least_one_need(households: list[DemoHousehold]) -> None:
    assert all(household.needs for household in households)
    assert all(1 <= need.severity <= 5 for h in households for need in h.needs)


def test_needs_mix_all_three_sectors_with_their_details(households: list[DemoHousehold]) -> None:
    details = {n.sector: n.details for h in households for n in h.needs}
    assert set(details) == {"shelter", "health", "protection"}
    for household in households:
        for need in household.needs:
            if need.sector == "shelter":
                assert need.details["damage_level"] in ("light", "medium", "heavy")
                assert need.details["tenure"] in ("owner", "tenant", "collective_centre", "hosted")
                assert isinstance(need.details["heating_available"], bool)
            elif need.sector == "health":
                assert need.details["services_needed"]
                assert set(need.details["services_needed"]) <= {
                    "primary_consultation",
                    "chronic_disease_care",
                    "mhpss",
                    "vaccination",
                }
            else:
                assert need.details["concern_codes"]
                assert set(need.details["concern_codes"]) <= {
                    "gbv_risk",
                    "trafficking_risk",
                    "psychological_distress",
                    "family_separation",
                }


def test_households_spread_over_at_least_six_oblasts() -> None:
    for seed in range(20):
        households = generate_households(6, seed=seed, today=TODAY)
        assert len({h.adm1_pcode for h in households}) >= 6


def test_age_based_vulnerabilities_follow_the_members(households: list[DemoHousehold]) -> None:
    for household in households:
        ages = [m.age_on(TODAY) for m in household.members]
        head = household.members[0]
        flags = household.vulnerabilities
        assert ("elderly_headed" in flags) == (ages[0] >= 60)
        assert ("child_headed" in flags) == (ages[0] < 18)
        assert ("unaccompanied_minor" in flags) == all(age < 18 for age in ages)
        assert ("large_family" in flags) == (sum(age < 18 for age in ages) >= 3)
        if "female_headed" in flags:
            assert head.sex == "female"
        if "pregnant_or_lactating" in flags:
            assert any(
                m.sex == "female" and 15 <= a <= 49
                for m, a in zip(household.members, ages, strict=True)
            )


def test_no_birthday_is_near_today_so_age_bands_do_not_depend_on_the_time_zone(
    households: list[DemoHousehold],
) -> None:
    for member in (m for h in households for m in h.members):
        for shift in (-1, 1):
            other_day = date.fromordinal(TODAY.toordinal() + shift)
            assert member.age_on(other_day) == member.age_on(TODAY)


def test_names_are_ukrainian_with_patronymics_and_the_family_shares_a_surname(
    households: list[DemoHousehold],
) -> None:
    for household in households:
        head = household.members[0]
        assert CYRILLIC_NAME.match(head.full_name), head.full_name
        family = _stem(head.full_name.split()[2])
        for member in household.members:
            _first, patronymic, surname = member.full_name.split()
            assert patronymic.endswith(("ович", "евич", "ївна", "івна", "овна")), patronymic
            assert patronymic.endswith(("ич",)) == (member.sex == "male")
            if member.relation != "non_relative":
                assert _stem(surname) == family


def test_children_take_their_patronymic_from_one_father(households: list[DemoHousehold]) -> None:
    father_of = {}
    for father in fathers():
        father_of[father.patronymic_male] = father.first_name
        father_of[father.patronymic_female] = father.first_name
    for household in households:
        children = [m for m in household.members if m.relation == "child"]
        named_fathers = {father_of[m.full_name.split()[1]] for m in children}
        assert len(named_fathers) <= 1, [m.full_name for m in children]
        men = [m for m in household.members if m.sex == "male" and m.relation in ("head", "spouse")]
        if children and men:
            assert named_fathers == {men[0].full_name.split()[0]}


def test_repairs_are_planned_for_light_and_medium_damage_only(
    households: list[DemoHousehold],
) -> None:
    for household in households:
        if household.damage_level in ("light", "medium"):
            repair = household.repair
            assert repair is not None and repair.category == household.damage_level
            low, high = {"light": (8_000, 20_000), "medium": (25_000, 60_000)}[repair.category]
            assert Decimal(low) <= repair.value_uah <= Decimal(high)
            assert repair.modality in ("in_kind", "voucher")
            assert re.fullmatch(r"\d+\.\d\d", repair.request_body()["value_uah"])
        else:
            assert household.repair is None


def test_a_repair_s_bill_of_quantities_adds_up_to_its_value(
    households: list[DemoHousehold],
) -> None:
    for household in households:
        if household.repair is not None:
            body = household.repair.assessment_body()
            total = sum(Decimal(line["unit_cost_uah"]) for line in body["boq"])
            assert total == household.repair.value_uah
            assert body["damage_level"] == household.repair.category


def test_every_run_shows_a_light_repair_and_a_heavy_damage_referral() -> None:
    for seed in range(40):
        households = with_shelter_showcase(generate_households(3, seed=seed, today=TODAY))

        assert any(h.damage_level == "light" and h.repair is not None for h in households)
        assert any(
            h.damage_level == "heavy" and h.repair is None and "referral" in h.consents
            for h in households
        )


def test_households_that_already_show_both_paths_are_left_as_they_are(
    households: list[DemoHousehold],
) -> None:
    assert with_shelter_showcase(households) == households


def test_winterization_kits_go_to_households_the_engineer_does_not_repair(
    households: list[DemoHousehold],
) -> None:
    marked = [h for h in with_winterization_kits(households) if h.winterization_kit]

    assert len(marked) == 2
    assert all(h.repair is None for h in marked)
    assert marked[0].damage_level == "heavy"


def _stem(surname: str) -> str:
    """A surname without its gender ending: Тихий and Тиха, Коваленко and Коваленко."""
    if surname.endswith("ий"):
        return surname[:-2]
    return surname[:-1] if surname.endswith("а") else surname
