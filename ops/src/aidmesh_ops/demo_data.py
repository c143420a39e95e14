"""Synthetic households for the demo: realistic, reproducible, and valid for registration.

Pure: no I/O, no clock. `generate_households(n, seed=..., today=...)` returns the same
households for the same arguments. Structure (who lives with whom, ages, needs) comes from
a seeded `random.Random`; Ukrainian names, patronymics and streets from Faker's `uk_UA`
locale, seeded with the same seed.

The people are fake, but the demo treats them as real personal data all the same: only
registration ever sees a name or a phone; the demo prints ids, codes and counts.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from faker import Faker
from faker.providers.person.uk_UA import Provider as UkrainianNames


@dataclass(frozen=True)
class Oblast:
    pcode: str
    name_en: str
    name_ua: str
    centre: str  # administrative centre, for addresses
    weight: int  # relative share of the demo's caseload (front-line and host oblasts)


#: The oblasts the demo registers households in: a copy of part of the OCHA COD-AB list
#: shipped with registration (reference/ua_oblasts.csv), so the demo reads no other package.
OBLASTS: tuple[Oblast, ...] = (
    Oblast("UA63", "Kharkivska", "Харківська", "Харків", 14),
    Oblast("UA14", "Donetska", "Донецька", "Краматорськ", 10),
    Oblast("UA12", "Dnipropetrovska", "Дніпропетровська", "Дніпро", 12),
    Oblast("UA23", "Zaporizka", "Запорізька", "Запоріжжя", 10),
    Oblast("UA65", "Khersonska", "Херсонська", "Херсон", 8),
    Oblast("UA48", "Mykolaivska", "Миколаївська", "Миколаїв", 7),
    Oblast("UA59", "Sumska", "Сумська", "Суми", 7),
    Oblast("UA74", "Chernihivska", "Чернігівська", "Чернігів", 5),
    Oblast("UA80", "Kyiv (city)", "Київ", "Київ", 8),
    Oblast("UA32", "Kyivska", "Київська", "Біла Церква", 5),
    Oblast("UA51", "Odeska", "Одеська", "Одеса", 7),
    Oblast("UA46", "Lvivska", "Львівська", "Львів", 7),
)
OBLAST_BY_PCODE: dict[str, Oblast] = {o.pcode: o for o in OBLASTS}
MIN_OBLASTS = 6

CHANNELS = ("field_office", "hotline", "partner", "kobo")
CHANNEL_WEIGHTS = (45, 15, 25, 15)
PARTNERS = ("IOM", "NRC", "PIN", "DRC")
DISPLACEMENT = ("idp", "returnee", "non_displaced", "host_community")
DISPLACEMENT_WEIGHTS = (55, 15, 20, 10)
SIZE_WEIGHTS = {1: 15, 2: 22, 3: 22, 4: 20, 5: 12, 6: 9}
RELATIONS = (
    "head",
    "spouse",
    "child",
    "parent",
    "sibling",
    "grandchild",
    "other_relative",
    "non_relative",
)
VULNERABILITIES = (
    "disability",
    "chronic_illness",
    "elderly_headed",
    "female_headed",
    "child_headed",
    "pregnant_or_lactating",
    "unaccompanied_minor",
    "large_family",
)
DAMAGE_LEVELS = ("light", "medium", "heavy")
TENURES = ("owner", "tenant", "collective_centre", "hosted")
HEALTH_SERVICES = ("primary_consultation", "chronic_disease_care", "mhpss", "vaccination")
PROTECTION_CONCERNS = (
    "gbv_risk",
    "trafficking_risk",
    "psychological_distress",
    "family_separation",
)
MOBILE_OPERATORS = ("50", "66", "95", "99", "67", "68", "96", "97", "98", "63", "73", "93")
PASSPORT_SERIES = ("АА", "ВК", "ЕК", "КМ", "МЕ", "НК", "СН", "ТТ", "ВМ", "КА")

#: Repair values in UAH, by category (light ~8-20k, medium ~25-60k), and how they're rounded.
REPAIR_VALUE_RANGE = {"light": (8_000, 20_000, 100), "medium": (25_000, 60_000, 500)}

# Faker's uk_UA data has a few forms that are not standard Ukrainian.
_PATRONYMIC_FIXES = {"Васильівна": "Василівна"}


@dataclass(frozen=True)
class Member:
    full_name: str
    sex: str
    date_of_birth: date
    relation: str
    document_number: str | None = None

    def age_on(self, day: date) -> int:
        born = self.date_of_birth
        return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


@dataclass(frozen=True)
class Need:
    sector: str
    severity: int
    details: dict[str, Any]


@dataclass(frozen=True)
class RepairPlan:
    """What the shelter field engineer assesses, plans and reports when the repair is done."""

    category: str  # = the damage level: light or medium
    modality: str  # in_kind or voucher
    value_uah: Decimal
    partner_org: str = "IOM"
    engineer_team: str = "ENG-DEMO-01"

    def assessment_body(self) -> dict[str, Any]:
        """`POST /cases/{id}/assessment`: a bill of quantities (materials and labour) that
        adds up to the repair's value."""
        materials = (self.value_uah * Decimal("0.7")).quantize(Decimal("0.01"))
        labour = self.value_uah - materials
        return {
            "damage_level": self.category,
            "assessed_by": self.engineer_team,
            "boq": [
                {
                    "item_code": f"materials.{self.category}_repair",
                    "quantity": "1",
                    "unit": "lot",
                    "unit_cost_uah": f"{materials:.2f}",
                },
                {
                    "item_code": f"labour.{self.category}_repair",
                    "quantity": "1",
                    "unit": "lot",
                    "unit_cost_uah": f"{labour:.2f}",
                },
            ],
        }

    def plan_body(self) -> dict[str, str]:
        """`POST /cases/{id}/plan`: the modality; the budget is the engineer's estimate."""
        return {"modality": self.modality}

    def request_body(self) -> dict[str, Any]:
        """`POST /cases/{id}/repair-completion`: the repair done and inspected."""
        return {
            "value_uah": f"{self.value_uah:.2f}",
            "inspection_passed": True,
            "partner_org": self.partner_org,
        }


@dataclass(frozen=True)
class DemoHousehold:
    """One household as a field office would submit it, plus what the demo will do for it."""

    index: int
    channel: str
    partner_org: str | None
    adm1_pcode: str
    displacement_status: str
    address: str
    phone: str | None
    members: tuple[Member, ...]
    vulnerabilities: frozenset[str]
    consents: frozenset[str]
    needs: tuple[Need, ...]
    repair: RepairPlan | None = None
    #: The shelter coordinator gives this household a winterization kit (and, for the
    #: first one, tries a second kit to show the duplicate-assistance guard refuse it).
    winterization_kit: bool = False

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def sectors(self) -> frozenset[str]:
        return frozenset(n.sector for n in self.needs)

    def need(self, sector: str) -> Need | None:
        return next((n for n in self.needs if n.sector == sector), None)

    @property
    def damage_level(self) -> str | None:
        shelter = self.need("shelter")
        return shelter.details["damage_level"] if shelter else None

    def registration_body(self) -> dict[str, Any]:
        """The JSON body of `POST /households`."""
        return {
            "channel": self.channel,
            "partner_org": self.partner_org,
            "location": {"adm1_pcode": self.adm1_pcode},
            "displacement_status": self.displacement_status,
            "size": self.size,
            "address": self.address,
            "phone": self.phone,
            "members": [
                {
                    "full_name": m.full_name,
                    "sex": m.sex,
                    "date_of_birth": m.date_of_birth.isoformat(),
                    "relation": m.relation,
                    "document_number": m.document_number,
                }
                for m in self.members
            ],
            "vulnerabilities": sorted(self.vulnerabilities),
            "consents": sorted(self.consents),
            "needs": [
                {"sector": n.sector, "severity": n.severity, "details": n.details}
                for n in self.needs
            ],
        }


def with_shelter_showcase(households: list[DemoHousehold]) -> list[DemoHousehold]:
    """Make sure a run shows shelter's main paths, whatever the seed: at least one light
    repair, and (with two households or more) heavy damage of a household that consented to
    referral. Households are changed only if no generated one already does."""
    chosen = list(households)
    if not chosen:
        return chosen

    def with_shelter_need(h: DemoHousehold, damage: str) -> DemoHousehold:
        need = Need(
            "shelter",
            4 if damage == "heavy" else 3,
            {"damage_level": damage, "tenure": "owner", "heating_available": False},
        )
        others = tuple(n for n in h.needs if n.sector != "shelter")
        return replace(h, needs=(need, *others))

    if not any(h.damage_level == "light" for h in chosen):
        light = with_shelter_need(chosen[0], "light")
        chosen[0] = replace(light, repair=RepairPlan("light", "voucher", Decimal("12400.00")))
    heavy_referred = any(h.damage_level == "heavy" and "referral" in h.consents for h in chosen)
    if len(chosen) >= 2 and not heavy_referred:
        lights = [i for i, h in enumerate(chosen) if h.damage_level == "light"]
        last = next(i for i in reversed(range(len(chosen))) if lights != [i])  # keep a light
        heavy = with_shelter_need(chosen[last], "heavy")
        chosen[last] = replace(heavy, repair=None, consents=heavy.consents | {"referral"})
    return chosen


def with_winterization_kits(households: list[DemoHousehold], count: int = 2) -> list[DemoHousehold]:
    """Mark the first `count` households the field engineer does not repair (heavy damage
    first, then households without a shelter need) for a winterization kit."""
    candidates = sorted(
        (h for h in households if h.repair is None),
        key=lambda h: (h.damage_level != "heavy", h.index),
    )
    chosen = {h.index for h in candidates[:count]}
    return [replace(h, winterization_kit=True) if h.index in chosen else h for h in households]


def generate_households(n: int, *, seed: int, today: date) -> list[DemoHousehold]:
    """`n` households spread over at least `MIN_OBLASTS` oblasts (when n allows).

    Same (n, seed, today) → same households. `today` anchors ages, so that age-based
    flags (elderly_headed, child_headed) hold on the day of registration.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    rng = random.Random(seed)  # noqa: S311 - synthetic data, reproducible by design
    fake = Faker("uk_UA")
    fake.seed_instance(seed)
    names = _Names(rng, fake)
    oblasts = _oblast_sequence(rng, n)
    return [
        _household(index, rng=rng, fake=fake, names=names, oblast=oblasts[index], today=today)
        for index in range(n)
    ]


def _oblast_sequence(rng: random.Random, n: int) -> list[Oblast]:
    """The first households take distinct oblasts so the spread is guaranteed; then weights."""
    distinct = rng.sample(OBLASTS, k=min(n, len(OBLASTS), MIN_OBLASTS))
    rest = rng.choices(OBLASTS, weights=[o.weight for o in OBLASTS], k=n - len(distinct))
    sequence = distinct + rest
    rng.shuffle(sequence)
    return sequence


# ---- people ----------------------------------------------------------------------------


@dataclass
class _Person:
    """A member while the household is being built (names come last)."""

    sex: str
    age: int
    relation: str
    first_name: str = ""
    patronymic: str = ""
    surname: str = ""


@dataclass(frozen=True)
class Father:
    first_name: str
    patronymic_male: str  # of his sons
    patronymic_female: str  # of his daughters

    def patronymic(self, sex: str) -> str:
        return self.patronymic_male if sex == "male" else self.patronymic_female


class _Names:
    """Ukrainian names from Faker's uk_UA data, with patronymics that agree within a family."""

    def __init__(self, rng: random.Random, fake: Faker) -> None:
        self._rng = rng
        self._fake = fake
        self.fathers = fathers()
        # Surnames that keep one form for men and women (-ко, -ук, -енко, ...), plus adjectival
        # ones (-ський/-ська) whose feminine form we derive. -ин/-ній change in the feminine
        # and -ич reads like a patronymic, so they are left out.
        self.surnames = tuple(
            s for s in UkrainianNames.last_names_common if not s.endswith(("ин", "ній", "ий", "ич"))
        ) + tuple(s for s in UkrainianNames.last_names_male_only if s.endswith("ий"))

    def father(self) -> Father:
        return self._rng.choice(self.fathers)

    def first_name(self, sex: str) -> str:
        if sex == "male":
            return self.father().first_name
        return self._fake.first_name_female()

    def surname(self) -> str:
        return self._rng.choice(self.surnames)


@functools.cache
def fathers() -> tuple[Father, ...]:
    """Male first names whose patronymics (for a son and a daughter) Faker's data holds."""
    male = set(UkrainianNames.middle_names_male)
    female = set(UkrainianNames.middle_names_female)
    found = []
    for name in UkrainianNames.first_names_male:
        stem = name[:-1]
        son = [c for c in (name + "ович", stem + "ович", stem + "йович") if c in male]
        daughter = [
            c for c in (name + "івна", stem + "івна", stem + "ївна", stem + "аївна") if c in female
        ]
        if son and daughter:
            found.append(Father(name, son[0], _PATRONYMIC_FIXES.get(daughter[0], daughter[0])))
    return tuple(found)


def surname_for(surname: str, sex: str) -> str:
    """The family surname in the member's gender: Гайворонський → Гайворонська."""
    if sex == "female" and surname.endswith("ий"):
        return surname[:-2] + "а"
    return surname


def _compose(rng: random.Random, size: int) -> list[_Person]:
    """Who lives in the household: relations, sexes and ages that make sense together."""
    if size == 1:
        if rng.random() < 0.04:
            return [_Person(rng.choice(("male", "female")), rng.randint(15, 17), "head")]
        age = rng.choice((rng.randint(18, 59), rng.randint(60, 88)))
        # Older people living alone are mostly women.
        sex = "female" if rng.random() < (0.75 if age >= 60 else 0.5) else "male"
        return [_Person(sex, age, "head")]

    kinds = ["couple", "single_parent", "elderly", "multigen", "grandparent", "child_headed"]
    weights = [40, 22, 10 if size <= 3 else 0, 18 if size >= 3 else 0, 7, 3 if size <= 4 else 0]
    kind = rng.choices(kinds, weights=weights)[0]

    if kind == "child_headed":
        head = _Person(rng.choice(("male", "female")), rng.randint(16, 17), "head")
        return [head] + [
            _Person(rng.choice(("male", "female")), rng.randint(4, head.age - 1), "sibling")
            for _ in range(size - 1)
        ]
    if kind == "grandparent":
        head = _Person("female" if rng.random() < 0.7 else "male", rng.randint(55, 76), "head")
        return [head] + [
            _Person(rng.choice(("male", "female")), rng.randint(2, 17), "grandchild")
            for _ in range(size - 1)
        ]
    if kind == "elderly":
        head_age = rng.randint(60, 85)
        head = _Person(rng.choice(("male", "female")), head_age, "head")
        spouse = _Person(_other(head.sex), _near(rng, head_age, 60, 90), "spouse")
        people = [head, spouse]
        if size == 3:
            people.append(_Person(rng.choice(("male", "female")), rng.randint(6, 17), "grandchild"))
        return people
    if kind == "single_parent":
        head = _Person("female" if rng.random() < 0.85 else "male", rng.randint(22, 50), "head")
        return [head, *_children(rng, parent_age=head.age, count=size - 1)]

    # couple (with children when size > 2) or multigenerational
    parents = 0
    if kind == "multigen":
        parents = 2 if size >= 5 and rng.random() < 0.4 else 1
    children_count = size - 2 - parents
    head_age = rng.randint(20, 85) if children_count == 0 else rng.randint(24, 55)
    if kind == "multigen":
        head_age = min(head_age, 52)
    head = _Person("male" if rng.random() < 0.55 else "female", head_age, "head")
    spouse = _Person(_other(head.sex), _near(rng, head_age, 18, 90), "spouse")
    people = [head, spouse]
    mother_age = head.age if head.sex == "female" else spouse.age
    people += _children(rng, parent_age=mother_age, count=children_count)
    if parents:
        parent_ages = (rng.randint(head.age + 20, min(head.age + 35, 92)) for _ in range(parents))
        sexes = ("male", "female") if parents == 2 else (rng.choice(("male", "female")),)
        people += [_Person(sex, age, "parent") for sex, age in zip(sexes, parent_ages, strict=True)]
    # Hosted families sometimes share with a relative or a friend of the family.
    if size >= 4 and children_count >= 2 and rng.random() < 0.15:
        people[-1] = _Person(
            rng.choice(("male", "female")),
            rng.randint(18, 70),
            rng.choice(("other_relative", "non_relative")),
        )
    return people


def _children(rng: random.Random, *, parent_age: int, count: int) -> list[_Person]:
    oldest = max(0, min(parent_age - 18, 24))
    return [
        _Person(rng.choice(("male", "female")), rng.randint(0, oldest), "child")
        for _ in range(count)
    ]


def _near(rng: random.Random, age: int, low: int, high: int) -> int:
    return max(low, min(high, age + rng.randint(-6, 6)))


def _other(sex: str) -> str:
    return "female" if sex == "male" else "male"


def _name(people: list[_Person], names: _Names) -> None:
    """Fill in names: one family surname, patronymics that agree with the fathers present."""
    family = names.surname()
    men = {p.relation: p for p in people if p.sex == "male"}
    # The father of the head's children: the head or the spouse if male, else someone absent.
    children_father = names.father()
    if "head" in men or "spouse" in men:
        present = men.get("head") or men["spouse"]
        present.first_name = children_father.first_name
    # The father of the head (and of the head's siblings): present as a parent, or absent.
    head_father = names.father()
    grandchildren_father = names.father()
    for person in people:
        if person.relation == "parent" and person.sex == "male":
            person.first_name = head_father.first_name
        elif not person.first_name:
            person.first_name = names.first_name(person.sex)
        if person.relation in ("head", "sibling"):
            person.patronymic = head_father.patronymic(person.sex)
        elif person.relation == "child":
            person.patronymic = children_father.patronymic(person.sex)
        elif person.relation == "grandchild":
            person.patronymic = grandchildren_father.patronymic(person.sex)
        else:
            person.patronymic = names.father().patronymic(person.sex)
        own = names.surname() if person.relation == "non_relative" else family
        person.surname = surname_for(own, person.sex)


def _birth_date(rng: random.Random, age: int, today: date) -> date:
    """A birthday that makes the member `age` today, at least 15 days from a birthday, so
    the age band is the same whichever time zone registration computes it in."""
    days_since_birthday = rng.randint(15, 350)
    last_birthday_year = (today - timedelta(days=days_since_birthday)).year
    born = today - timedelta(days=days_since_birthday)
    try:
        born = born.replace(year=last_birthday_year - age)
    except ValueError:  # 29 February in a common year
        born = born.replace(year=last_birthday_year - age, day=28)
    return born


def _document(rng: random.Random, age: int) -> str | None:
    if age < 16 or rng.random() < 0.3:
        return None
    if rng.random() < 0.5:  # booklet passport: series + 6 digits
        return rng.choice(PASSPORT_SERIES) + f"{rng.randrange(10**6):06d}"
    return f"{rng.randrange(10**9):09d}"  # ID card: 9 digits


# ---- households ------------------------------------------------------------------------


def _household(
    index: int,
    *,
    rng: random.Random,
    fake: Faker,
    names: _Names,
    oblast: Oblast,
    today: date,
) -> DemoHousehold:
    size = rng.choices(list(SIZE_WEIGHTS), weights=list(SIZE_WEIGHTS.values()))[0]
    people = _compose(rng, size)
    _name(people, names)
    members = tuple(
        Member(
            full_name=f"{p.first_name} {p.patronymic} {p.surname}",
            sex=p.sex,
            date_of_birth=_birth_date(rng, p.age, today),
            relation=p.relation,
            document_number=_document(rng, p.age),
        )
        for p in people
    )
    channel = rng.choices(CHANNELS, weights=CHANNEL_WEIGHTS)[0]
    displacement = rng.choices(DISPLACEMENT, weights=DISPLACEMENT_WEIGHTS)[0]
    vulnerabilities = _vulnerabilities(rng, members, today)
    needs = _needs(rng, members=members, vulnerabilities=vulnerabilities, today=today)
    consents = {"registration"}
    if rng.random() < 0.75:
        consents.add("data_sharing")
    # Protection case management only goes ahead with informed consent to be referred.
    if rng.random() < 0.65 or any(n.sector == "protection" for n in needs):
        consents.add("referral")
    phone = None if channel == "kobo" and rng.random() < 0.3 else _phone(rng)
    household = DemoHousehold(
        index=index,
        channel=channel,
        partner_org=rng.choice(PARTNERS) if channel == "partner" else None,
        adm1_pcode=oblast.pcode,
        displacement_status=displacement,
        address=_address(fake, oblast),
        phone=phone,
        members=members,
        vulnerabilities=frozenset(vulnerabilities),
        consents=frozenset(consents),
        needs=needs,
    )
    return _with_repair_plan(rng, household)


def _vulnerabilities(rng: random.Random, members: tuple[Member, ...], today: date) -> set[str]:
    """Flags that follow from who is in the household, plus some that screening found."""
    head = members[0]
    ages = [m.age_on(today) for m in members]
    head_age = ages[0]
    flags: set[str] = set()
    if head_age >= 60:
        flags.add("elderly_headed")
    has_husband = any(m.relation == "spouse" and m.sex == "male" for m in members)
    if head.sex == "female" and head_age >= 18 and not has_husband:
        flags.add("female_headed")
    if head_age < 18:
        flags.add("child_headed")
        if all(age < 18 for age in ages):
            flags.add("unaccompanied_minor")
    if sum(1 for age in ages if age < 18) >= 3:
        flags.add("large_family")
    women_of_age = [
        m for m, age in zip(members, ages, strict=True) if m.sex == "female" and 18 <= age <= 45
    ]
    infants = sum(1 for age in ages if age < 1)
    if women_of_age and (infants or rng.random() < 0.12):
        flags.add("pregnant_or_lactating")
    elderly = sum(1 for age in ages if age >= 60)
    if rng.random() < 0.12 + 0.08 * elderly:
        flags.add("disability")
    if rng.random() < 0.15 + 0.15 * elderly:
        flags.add("chronic_illness")
    return flags


def _needs(
    rng: random.Random,
    *,
    members: tuple[Member, ...],
    vulnerabilities: set[str],
    today: date,
) -> tuple[Need, ...]:
    sectors = [
        s for s, p in (("shelter", 0.6), ("health", 0.5), ("protection", 0.3)) if rng.random() < p
    ]
    if not sectors:
        sectors = [rng.choices(("shelter", "health", "protection"), weights=(5, 4, 2))[0]]
    needs = []
    for sector in sectors:
        if sector == "shelter":
            needs.append(_shelter_need(rng))
        elif sector == "health":
            needs.append(
                _health_need(rng, members=members, vulnerabilities=vulnerabilities, today=today)
            )
        else:
            needs.append(_protection_need(rng, members=members, today=today))
    return tuple(needs)


def _shelter_need(rng: random.Random) -> Need:
    damage = rng.choices(DAMAGE_LEVELS, weights=(40, 35, 25))[0]
    tenure = rng.choices(TENURES, weights=(55, 20, 10, 15))[0]
    heating = rng.random() < {"light": 0.7, "medium": 0.45, "heavy": 0.15}[damage]
    severity = {"light": 2, "medium": 3, "heavy": 4}[damage]
    if not heating and rng.random() < 0.6:  # winter without heating makes it worse
        severity = min(5, severity + 1)
    return Need(
        "shelter",
        severity,
        {"damage_level": damage, "tenure": tenure, "heating_available": heating},
    )


def _health_need(
    rng: random.Random, *, members: tuple[Member, ...], vulnerabilities: set[str], today: date
) -> Need:
    ages = [m.age_on(today) for m in members]
    services = set()
    if rng.random() < 0.7:
        services.add("primary_consultation")
    if "chronic_illness" in vulnerabilities or (max(ages) >= 60 and rng.random() < 0.5):
        services.add("chronic_disease_care")
    if any(age < 6 for age in ages) and rng.random() < 0.7:
        services.add("vaccination")
    if rng.random() < 0.35:
        services.add("mhpss")
    if not services:
        services.add("primary_consultation")
    severity = rng.choice((2, 3, 3, 4))
    if "chronic_disease_care" in services and rng.random() < 0.3:
        severity += 1
    return Need("health", severity, {"services_needed": sorted(services)})


def _protection_need(rng: random.Random, *, members: tuple[Member, ...], today: date) -> Need:
    ages = [m.age_on(today) for m in members]
    has_woman = any(m.sex == "female" and age >= 14 for m, age in zip(members, ages, strict=True))
    concerns = set()
    if has_woman and rng.random() < 0.4:
        concerns.add("gbv_risk")
    if rng.random() < 0.2:
        concerns.add("trafficking_risk")
    if rng.random() < 0.55:
        concerns.add("psychological_distress")
    if any(age < 18 for age in ages) and rng.random() < 0.35:
        concerns.add("family_separation")
    if not concerns:
        concerns.add("psychological_distress")
    if concerns & {"gbv_risk", "trafficking_risk"}:
        severity = rng.choice((3, 3, 4, 4, 5))
    else:
        severity = rng.choice((2, 3, 3, 4))
    return Need("protection", severity, {"concern_codes": sorted(concerns)})


def _with_repair_plan(rng: random.Random, household: DemoHousehold) -> DemoHousehold:
    damage = household.damage_level
    if damage not in REPAIR_VALUE_RANGE:
        return household
    low, high, step = REPAIR_VALUE_RANGE[damage]
    value = Decimal(rng.randrange(low, high + 1, step))
    plan = RepairPlan(
        category=damage,
        modality=rng.choice(("in_kind", "voucher")),
        value_uah=value.quantize(Decimal("0.01")),
    )
    return replace(household, repair=plan)


def _phone(rng: random.Random) -> str:
    return f"+380{rng.choice(MOBILE_OPERATORS)}{rng.randrange(10**7):07d}"


def _address(fake: Faker, oblast: Oblast) -> str:
    street = fake.street_name()
    kind = "пров." if street.endswith("й") else "вул."  # so the adjective agrees
    flat = f", кв. {fake.random_int(1, 180)}" if fake.random_int(0, 2) else ""
    return f"м. {oblast.centre}, {kind} {street}, буд. {fake.random_int(1, 240)}{flat}"
