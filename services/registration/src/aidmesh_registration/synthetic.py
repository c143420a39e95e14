"""Synthetic Ukrainian households with a known truth about who is who, to measure dedup.

Registrations are generated as a partner's export would hold them: households of a head,
often a spouse, children and sometimes an elderly parent, with names from Faker's uk_UA
lists (drawn with a Zipf-like skew, so common surnames are common), patronymics formed from
the father's name, passports, ID cards and IDP certificates, phones and P-codes.

Some households register twice (or three times), and the repeat differs the way real ones
do: names typed in Latin letters (official or older spellings), Russian-style Cyrillic
forms, typos, day and month of birth swapped, another phone format or another phone, no
patronymic, no documents, a move to another hromada or oblast, a newborn added, the spouse
as head, family and given names swapped. Hard negatives are added on purpose: twins heading
their own households, a father and son of the same name, neighbours with the same surname.

Every record carries `truth` (the real household it describes): two records are duplicates
exactly when their truths are equal. Deterministic by seed.

    python -m aidmesh_registration.synthetic evaluate --households 20000 --seed 1
    python -m aidmesh_registration.synthetic generate --households 1000000 --out var/h.csv
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
import itertools
import json
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import typer
from faker.providers.person.uk_UA import Provider as UkrainianNames

from . import dedup
from .reference import oblast_pcodes
from .translit import to_latin

#: Changes whenever the same seed would give other data (files generated before are stale).
GENERATOR_VERSION = 3
#: "Today" of the synthetic world (ages are computed against it), fixed for determinism.
TODAY = date(2026, 1, 15)

# The most frequent Ukrainian surnames and given names come first (Zipf-weighted draws give
# them most of the mass); Faker's longer lists follow for the tail.
_COMMON_SURNAMES = (
    "Мельник", "Шевченко", "Коваленко", "Бондаренко", "Бойко", "Ткаченко", "Кравченко",
    "Ковальчук", "Коваль", "Олійник", "Шевчук", "Поліщук", "Іваненко", "Ткачук", "Савченко",
    "Бондар", "Марченко", "Руденко", "Мороз", "Лисенко", "Петренко", "Клименко", "Павленко",
    "Кравчук", "Кузьменко", "Пономаренко", "Савчук", "Василенко", "Левченко", "Харченко",
)  # fmt: skip
_COMMON_MALE = (
    "Олександр", "Сергій", "Андрій", "Володимир", "Юрій", "Олексій", "Дмитро", "Віктор",
    "Микола", "Василь", "Іван", "Михайло", "Петро", "Максим", "Богдан", "Віталій", "Ігор",
    "Тарас", "Роман", "Павло", "Артем", "Назар", "Денис", "Євген", "Анатолій", "Валерій",
)  # fmt: skip
_COMMON_FEMALE = (
    "Олена", "Наталія", "Тетяна", "Ірина", "Світлана", "Оксана", "Ольга", "Людмила", "Юлія",
    "Марія", "Галина", "Анна", "Ганна", "Валентина", "Надія", "Катерина", "Лариса", "Інна",
    "Вікторія", "Анастасія", "Софія", "Дарина", "Христина", "Віра", "Любов", "Яна",
)  # fmt: skip
# Russian forms of Ukrainian given names, as some registrars write them in Cyrillic.
_RUSSIAN_FORMS = {
    "Юрій": "Юрий", "Сергій": "Сергей", "Андрій": "Андрей", "Олексій": "Алексей",
    "Олександр": "Александр", "Дмитро": "Дмитрий", "Василь": "Василий", "Наталія": "Наталья",
    "Тетяна": "Татьяна", "Ганна": "Анна", "Віталій": "Виталий", "Анатолій": "Анатолий",
    "Валерій": "Валерий", "Євген": "Евгений", "Петро": "Петр", "Михайло": "Михаил",
    "Олена": "Елена", "Ірина": "Ирина", "Галина": "Галина", "Юлія": "Юлия",
}  # fmt: skip
# Spellings of older passports and of Russian-style romanisation: applied at random to the
# official Latin form (Yurii → Yuriy, Khomenko → Homenko, Natalia → Natalya, ...).
_LATIN_VARIANTS = (
    ("ii", "iy"), ("yi", "i"), ("kh", "h"), ("h", "g"), ("ia", "ya"), ("iu", "yu"),
    ("ie", "ye"), ("y", "i"), ("ts", "tz"), ("zh", "j"),
)  # fmt: skip
_KEYBOARD = ("йцукенгшщзхї", "фівапролджє", "ячсмитьбю")
_NEIGHBOURS = {
    c: "".join(row[j] for j in (i - 1, i + 1) if 0 <= j < len(row))
    for row in _KEYBOARD
    for i, c in enumerate(row)
}
_OPERATORS = ("50", "66", "95", "99", "67", "68", "96", "97", "98", "63", "73", "93")
_SECTORS = ("shelter", "health", "protection", "wash", "cash", "nfi", "livelihoods")
_STATUSES = ("idp", "idp", "idp", "returnee", "non_displaced", "host_community")
_PASSPORT_SERIES = "АВЕКМНОРСТ"


@dataclass(frozen=True)
class SyntheticMember:
    family_name: str
    given_name: str
    patronymic: str | None
    sex: str
    birth_date: date
    relation: str
    passport: str | None = None
    id_card: str | None = None
    idp_certificate: str | None = None
    vulnerabilities: tuple[str, ...] = ()

    def documents(self) -> frozenset[str]:
        found = {
            f"{kind}:{number}"
            for kind, number in (
                ("passport", self.passport),
                ("id_card", self.id_card),
                ("idp_certificate", self.idp_certificate),
            )
            if number
        }
        return frozenset(found)


@dataclass(frozen=True)
class SyntheticHousehold:
    #: The partner's reference for this record (unique per record).
    ref: str
    #: The real household this record describes: equal truths are duplicates.
    truth: int
    #: "original", "repeat" (a re-registration), or the kind of hard negative.
    kind: str
    #: What was changed in a repeat (empty otherwise).
    variations: tuple[str, ...]
    adm1: str
    adm2: str
    adm3: str
    displacement_status: str
    #: As the partner typed it (any common format); None when not given.
    phone: str | None
    address: str
    members: tuple[SyntheticMember, ...]  # head first
    vulnerabilities: tuple[str, ...]
    consents: tuple[str, ...]
    needs: tuple[tuple[str, int], ...]

    @property
    def head(self) -> SyntheticMember:
        return next(m for m in self.members if m.relation == "head")


def _zipf_weights(n: int, *, s: float = 1.0) -> list[float]:
    return list(itertools.accumulate(1.0 / (rank + 1) ** s for rank in range(n)))


def _names(common: Sequence[str], more: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*common, *more]))


def patronymic_of(father: str, sex: str) -> str:
    """The patronymic a child of `father` gets (Іван → Іванович / Іванівна)."""
    male = sex == "male"
    if father == "Микола":
        return "Миколайович" if male else "Миколаївна"
    if father == "Ілля":
        return "Ілліч" if male else "Іллівна"
    if father.endswith("й"):
        return father + "ович" if male else father[:-1] + "ївна"
    if father.endswith("ь"):
        return father + "ович" if male else father[:-1] + "івна"
    if father.endswith(("о", "а", "я")):
        return father[:-1] + ("ович" if male else "івна")
    return father + ("ович" if male else "івна")


class _World:
    """The random draws of one generation (one seed)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - synthetic data, not secrets
        self.surnames = _names(_COMMON_SURNAMES, UkrainianNames.last_names_common)
        self.male = _names(_COMMON_MALE, UkrainianNames.first_names_male)
        self.female = _names(_COMMON_FEMALE, UkrainianNames.first_names_female)
        self.fathers = self.male  # patronymics come from (other) men's names
        # Given names are concentrated (one boy in ten is an Олександр); surnames much less
        # (the commonest are a fraction of a percent each in Ukraine), but Faker's list is
        # short, so the skew that remains stands for the long tail it lacks.
        self._weights = {
            id(self.surnames): _zipf_weights(len(self.surnames), s=0.5),
            id(self.male): _zipf_weights(len(self.male)),
            id(self.female): _zipf_weights(len(self.female)),
        }
        self.oblasts = sorted(oblast_pcodes())
        self._documents = itertools.count(100_001)

    def pick(self, names: tuple[str, ...]) -> str:
        weights = self._weights[id(names)]
        return names[bisect.bisect(weights, self.rng.random() * weights[-1])]

    def given(self, sex: str) -> str:
        return self.pick(self.male if sex == "male" else self.female)

    def birth(self, *, age_from: int, age_to: int) -> date:
        return TODAY - timedelta(days=self.rng.randint(age_from * 365 + 1, age_to * 365 + 364))

    def phone(self) -> str:
        return "+380" + self.rng.choice(_OPERATORS) + f"{self.rng.randrange(10**7):07}"

    def documents(self, *, adult: bool, idp: bool) -> dict[str, str | None]:
        rng, serial = self.rng, next(self._documents)
        found: dict[str, str | None] = {}
        if adult and rng.random() < 0.85:
            if rng.random() < 0.5:
                # Six digits only: past 999,999 the series' first letter moves on, so a
                # number stays valid and no two people share one (10 million in all).
                first = _PASSPORT_SERIES[(serial // 10**6) % len(_PASSPORT_SERIES)]
                found["passport"] = f"{first}{rng.choice(_PASSPORT_SERIES)}{serial % 10**6:06}"
            else:
                found["id_card"] = f"{serial:09}"
        if idp and rng.random() < 0.5:
            found["idp_certificate"] = f"{rng.randrange(10**4):04}-{serial:010}"
        return found

    def place(self) -> tuple[str, str, str]:
        oblast = self.rng.choice(self.oblasts)
        raion = f"{oblast}{self.rng.randint(1, 8):02}"
        return oblast, raion, f"{raion}{self.rng.randint(1, 30):03}"

    def hromada_near(self, adm2: str) -> str:
        return f"{adm2}{self.rng.randint(1, 30):03}"


def _member(
    world: _World,
    *,
    family: str,
    sex: str,
    relation: str,
    born: date,
    father: str | None,
    idp: bool,
    given: str | None = None,
) -> SyntheticMember:
    adult = (TODAY - born).days >= 16 * 365
    flags = []
    if world.rng.random() < 0.04:
        flags.append("disability")
    if adult and world.rng.random() < 0.06:
        flags.append("chronic_illness")
    return SyntheticMember(
        family_name=family,
        given_name=given or world.given(sex),
        patronymic=patronymic_of(father or world.pick(world.fathers), sex),
        sex=sex,
        birth_date=born,
        relation=relation,
        vulnerabilities=tuple(flags),
        **world.documents(adult=adult, idp=idp),
    )


def _household(
    world: _World,
    *,
    ref: str,
    truth: int,
    kind: str = "original",
    head: SyntheticMember | None = None,
    place: tuple[str, str, str] | None = None,
) -> SyntheticHousehold:
    rng = world.rng
    status = rng.choice(_STATUSES)
    idp = status == "idp"
    family = head.family_name if head else world.pick(world.surnames)
    if head is None:
        sex = "female" if rng.random() < 0.55 else "male"
        head = _member(
            world,
            family=family,
            sex=sex,
            relation="head",
            born=world.birth(age_from=18, age_to=85),
            father=None,
            idp=idp,
        )
    members = [head]
    head_age = (TODAY - head.birth_date).days // 365
    if head_age < 75 and rng.random() < 0.6:
        spouse_sex = "female" if head.sex == "male" else "male"
        members.append(
            _member(
                world,
                family=family,
                sex=spouse_sex,
                relation="spouse",
                born=world.birth(age_from=max(18, head_age - 6), age_to=min(85, head_age + 6)),
                father=None,
                idp=idp,
            )
        )
    father = next((m.given_name for m in members if m.sex == "male"), None)
    if 20 <= head_age <= 60:
        for _ in range(rng.choice((0, 0, 1, 1, 2, 2, 3, 4))):
            members.append(
                _member(
                    world,
                    family=family,
                    sex=rng.choice(("male", "female")),
                    relation="child",
                    born=world.birth(age_from=0, age_to=min(17, head_age - 19)),
                    father=father,
                    idp=idp,
                )
            )
    if 25 <= head_age <= 55 and rng.random() < 0.1:
        members.append(
            _member(
                world,
                family=family,
                sex=rng.choice(("male", "female")),
                relation="parent",
                born=world.birth(age_from=head_age + 20, age_to=min(95, head_age + 40)),
                father=None,
                idp=idp,
            )
        )
    adm1, adm2, adm3 = place or world.place()
    needs = tuple(
        (sector, rng.randint(2, 5))
        for sector in rng.sample(_SECTORS, rng.choice((0, 0, 1, 1, 1, 2)))
    )
    consents = ["registration"] + [
        purpose for purpose in ("data_sharing", "referral") if rng.random() < 0.6
    ]
    return SyntheticHousehold(
        ref=ref,
        truth=truth,
        kind=kind,
        variations=(),
        adm1=adm1,
        adm2=adm2,
        adm3=adm3,
        displacement_status=status,
        phone=world.phone() if rng.random() < 0.9 else None,
        address=f"вул. {world.pick(world.surnames)}, {rng.randint(1, 150)}",
        members=tuple(members),
        vulnerabilities=("large_family",) if len(members) >= 6 else (),
        consents=tuple(consents),
        needs=needs,
    )


# ---- repeats: the same household registered again, differently --------------------------


def _typo(rng: random.Random, word: str) -> str:
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.choice(("substitute", "delete", "double", "transpose"))
    lower = word[i].lower()
    if kind == "substitute" and _NEIGHBOURS.get(lower):
        return word[:i] + rng.choice(_NEIGHBOURS[lower]) + word[i + 1 :]
    if kind == "delete":
        return word[:i] + word[i + 1 :]
    if kind == "double":
        return word[:i] + word[i] + word[i:]
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def _variant_latin(rng: random.Random, word: str) -> str:
    latin = to_latin(word)
    for old, new in _LATIN_VARIANTS:
        if old in latin.lower() and rng.random() < 0.35:
            latin = latin.replace(old, new).replace(old.capitalize(), new.capitalize())
    return latin


def _phone_format(rng: random.Random, e164: str) -> str:
    national = "0" + e164[4:]
    return rng.choice(
        (
            f"{national[:3]} {national[3:6]} {national[6:8]} {national[8:]}",
            f"+38 ({national[:3]}) {national[3:6]}-{national[6:8]}-{national[8:]}",
            national,
            e164[1:],
        )
    )


def _repeat(
    world: _World, original: SyntheticHousehold, *, ref: str, latin: bool
) -> SyntheticHousehold:
    """The household registered again, with the slips and changes real repeats show."""
    rng = world.rng
    changed: list[str] = []
    members = list(original.members)

    def rename(transform: Any, *, which: tuple[str, ...] = ("family_name", "given_name")) -> None:
        for i, m in enumerate(members):
            members[i] = dataclasses.replace(
                m, **{f: transform(getattr(m, f)) for f in which if getattr(m, f)}
            )

    if latin and rng.random() < 0.25:
        official = rng.random() < 0.5
        rename(
            to_latin if official else lambda w: _variant_latin(rng, w),
            which=("family_name", "given_name", "patronymic"),
        )
        changed.append("latin_official" if official else "latin_variant")
    elif rng.random() < 0.12:
        rename(lambda w: _RUSSIAN_FORMS.get(w, w), which=("given_name",))
        changed.append("russian_form")
    if rng.random() < 0.3:
        field_name = rng.choice(("family_name", "given_name"))
        members[0] = dataclasses.replace(
            members[0], **{field_name: _typo(rng, getattr(members[0], field_name))}
        )
        changed.append(f"typo_{field_name}")
    head = members[0]
    born = head.birth_date
    if born.day <= 12 and born.day != born.month and rng.random() < 0.15:
        members[0] = dataclasses.replace(head, birth_date=date(born.year, born.day, born.month))
        changed.append("swapped_day_month")
    elif rng.random() < 0.04:
        shifted = born + timedelta(days=rng.choice((-1, 1, -365, 365)))
        members[0] = dataclasses.replace(head, birth_date=shifted)
        changed.append("birth_date_typo")
    if rng.random() < 0.3:
        members = [dataclasses.replace(m, patronymic=None) for m in members]
        changed.append("no_patronymic")
    if rng.random() < 0.6:
        members = [
            dataclasses.replace(m, passport=None, id_card=None, idp_certificate=None)
            for m in members
        ]
        changed.append("no_documents")
    phone = original.phone
    roll = rng.random()
    if phone and roll < 0.4:
        phone = _phone_format(rng, phone)
        changed.append("phone_format")
    elif roll < 0.6:
        phone = world.phone()
        changed.append("new_phone")
    elif roll < 0.7:
        phone = None
        changed.append("no_phone")
    adm1, adm2, adm3 = original.adm1, original.adm2, original.adm3
    roll = rng.random()
    if roll < 0.05:
        adm1, adm2, adm3 = world.place()
        changed.append("moved_oblast")
    elif roll < 0.35:
        adm3 = world.hromada_near(adm2)
        changed.append("moved_hromada")
    if len(members) > 1 and rng.random() < 0.1:
        members.pop(rng.randrange(1, len(members)))
        changed.append("member_left")
    if rng.random() < 0.1:
        father = next((m.given_name for m in members if m.sex == "male"), None)
        baby = _member(
            world,
            family=members[0].family_name,
            sex=rng.choice(("male", "female")),
            relation="child",
            born=world.birth(age_from=0, age_to=0),
            father=father,
            idp=original.displacement_status == "idp",
        )
        members.append(baby)
        changed.append("newborn")
    spouse = next((i for i, m in enumerate(members) if m.relation == "spouse"), None)
    if spouse is not None and rng.random() < 0.05:
        members[0] = dataclasses.replace(members[0], relation="spouse")
        members[spouse] = dataclasses.replace(members[spouse], relation="head")
        members.insert(0, members.pop(spouse))
        changed.append("spouse_as_head")
    if rng.random() < 0.03:
        head = members[0]
        members[0] = dataclasses.replace(
            head, family_name=head.given_name, given_name=head.family_name
        )
        changed.append("names_swapped")
    return dataclasses.replace(
        original,
        ref=ref,
        kind="repeat",
        variations=tuple(changed),
        adm1=adm1,
        adm2=adm2,
        adm3=adm3,
        phone=phone,
        members=tuple(members),
    )


# ---- hard negatives: different households that look alike --------------------------------


def _twin_of(
    world: _World, other: SyntheticHousehold, *, ref: str, truth: int
) -> SyntheticHousehold:
    head = other.head
    sex = head.sex if world.rng.random() < 0.6 else ("female" if head.sex == "male" else "male")
    given = head.given_name
    while given == head.given_name:
        given = world.given(sex)
    twin = dataclasses.replace(
        _member(
            world,
            family=head.family_name,
            sex=sex,
            relation="head",
            born=head.birth_date,
            father=None,
            idp=False,
            given=given,
        ),
        patronymic=_same_father(head.patronymic, sex),
    )
    place = (other.adm1, other.adm2, other.adm3)
    return _household(world, ref=ref, truth=truth, kind="twin", head=twin, place=place)


def _same_father(patronymic: str | None, sex: str) -> str | None:
    """A sibling's patronymic of the other sex (Іванович ↔ Іванівна), as far as regular."""
    if patronymic is None:
        return None
    for male, female in (("йович", "ївна"), ("ович", "івна"), ("ьович", "івна")):
        if sex == "female" and patronymic.endswith(male):
            return patronymic[: -len(male)] + female
        if sex == "male" and patronymic.endswith(female):
            return patronymic[: -len(female)] + male
    return patronymic


def _namesake_of(
    world: _World, other: SyntheticHousehold, *, ref: str, truth: int
) -> SyntheticHousehold:
    """A neighbour with the same surname (a common one, in the same hromada)."""
    head = _member(
        world,
        family=other.head.family_name,
        sex=other.head.sex,
        relation="head",
        born=world.birth(age_from=18, age_to=85),
        father=None,
        idp=False,
    )
    place = (other.adm1, other.adm2, other.adm3)
    return _household(world, ref=ref, truth=truth, kind="namesake", head=head, place=place)


def _son_of(
    world: _World, other: SyntheticHousehold, *, ref: str, truth: int
) -> SyntheticHousehold:
    """A grown son with his father's name, heading his own household nearby."""
    father = other.head
    age = (TODAY - father.birth_date).days // 365
    born = world.birth(age_from=max(18, age - 35), age_to=max(18, age - 22))
    son = _member(
        world,
        family=father.family_name,
        sex="male",
        relation="head",
        born=born,
        father=father.given_name,
        idp=False,
        given=father.given_name,
    )
    place = (other.adm1, other.adm2, other.adm3)
    return _household(world, ref=ref, truth=truth, kind="father_son", head=son, place=place)


def generate(
    households: int,
    *,
    seed: int,
    repeat_share: float = 0.1,
    hard_negative_share: float = 0.05,
    latin: bool = True,
) -> list[SyntheticHousehold]:
    """`households` registrations in the order a registry receives them.

    About `repeat_share` of them register a household again (a few of those a third time),
    and about `hard_negative_share` are different households made to look alike. With
    `latin=False`, repeats keep names in Cyrillic (what the registry accepts from a file);
    with it, a quarter of repeats have names typed in Latin letters.
    """
    world = _World(seed)
    rng = world.rng
    records: list[SyntheticHousehold] = []
    pending: list[tuple[int, SyntheticHousehold]] = []  # repeats, due at a later position
    truths = itertools.count()
    for position in range(households):
        if pending and pending[0][0] <= position:
            _, record = pending.pop(0)
            records.append(dataclasses.replace(record, ref=f"HH{position + 1:07}"))
            continue
        ref = f"HH{position + 1:07}"
        roll = rng.random()
        if records and roll < hard_negative_share:
            other = records[rng.randrange(max(0, len(records) - 5000), len(records))]
            if other.head.sex == "male" and rng.random() < 0.2:
                records.append(_son_of(world, other, ref=ref, truth=next(truths)))
            elif rng.random() < 0.5:
                records.append(_twin_of(world, other, ref=ref, truth=next(truths)))
            else:
                records.append(_namesake_of(world, other, ref=ref, truth=next(truths)))
            continue
        record = _household(world, ref=ref, truth=next(truths))
        records.append(record)
        if rng.random() < repeat_share * 1.05:
            for _ in range(2 if rng.random() < 0.08 else 1):
                due = position + rng.randint(1, 2000)
                bisect.insort(
                    pending, (due, _repeat(world, record, ref="", latin=latin)), key=lambda p: p[0]
                )
    return records


# ---- evaluation ----------------------------------------------------------------------------


def to_candidate(record: SyntheticHousehold, household_id: UUID) -> dedup.Candidate:
    """The record as the registry would hold it (phone in E.164, documents normalised)."""
    from .phones import normalise_phone  # the registry's own normalisation

    members = tuple(
        dedup.Person(
            family_name=m.family_name,
            given_name=m.given_name,
            patronymic=m.patronymic,
            birth_date=m.birth_date,
            sex=m.sex,
            documents=m.documents(),
        )
        for m in record.members
    )
    return dedup.Candidate(
        household_id=household_id,
        adm1_pcode=record.adm1,
        adm3_pcode=record.adm3,
        phone=normalise_phone(record.phone) if record.phone else None,
        head=members[[m.relation for m in record.members].index("head")],
        members=members,
    )


@dataclass
class Evaluation:
    records: int
    true_pairs: int
    candidate_pairs: int
    predicted_pairs: int
    true_positives: int
    precision: float
    recall: float
    f1: float
    #: Share of the true pairs that blocking put in front of the scorer at all.
    blocking_recall: float
    seconds: float
    #: Recall of repeats showing each variation (a repeat shows several).
    recall_by_variation: dict[str, float] = field(default_factory=dict)
    #: False positives by the kind of the records involved.
    false_positives_by_kind: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def true_pairs(truths: Sequence[int]) -> set[tuple[int, int]]:
    """(later, earlier) index pairs of records describing the same household."""
    groups: dict[int, list[int]] = defaultdict(list)
    for index, truth in enumerate(truths):
        groups[truth].append(index)
    return {
        (later, earlier)
        for members in groups.values()
        for earlier, later in itertools.combinations(members, 2)
    }


def score_predictions(
    records: Sequence[SyntheticHousehold],
    predicted: set[tuple[int, int]],
    *,
    candidate_pairs: set[tuple[int, int]],
    reasons: Counter[str],
    seconds: float,
) -> Evaluation:
    truth = true_pairs([r.truth for r in records])
    hits = predicted & truth
    precision = len(hits) / len(predicted) if predicted else 1.0
    recall = len(hits) / len(truth) if truth else 1.0
    by_variation: dict[str, list[bool]] = defaultdict(list)
    for later, earlier in truth:
        for variation in records[later].variations or ("none",):
            by_variation[variation].append((later, earlier) in hits)
    false_kinds: Counter[str] = Counter()
    for later, earlier in predicted - truth:
        false_kinds["/".join(sorted({records[later].kind, records[earlier].kind}))] += 1
    return Evaluation(
        records=len(records),
        true_pairs=len(truth),
        candidate_pairs=len(candidate_pairs),
        predicted_pairs=len(predicted),
        true_positives=len(hits),
        precision=round(precision, 4),
        recall=round(recall, 4),
        f1=round(2 * precision * recall / (precision + recall), 4) if hits else 0.0,
        blocking_recall=round(len(truth & candidate_pairs) / len(truth), 4) if truth else 1.0,
        seconds=round(seconds, 3),
        recall_by_variation={k: round(sum(v) / len(v), 4) for k, v in sorted(by_variation.items())},
        false_positives_by_kind=dict(false_kinds.most_common()),
        reasons=dict(reasons.most_common()),
    )


def evaluate(
    records: Sequence[SyntheticHousehold], *, threshold: float = dedup.THRESHOLD
) -> Evaluation:
    """Run blocking and scoring over all records, as one registry receiving them in order,
    and compare the pairs found with the truth."""
    started = time.perf_counter()
    profiles = [dedup.profile(to_candidate(r, UUID(int=i + 1))) for i, r in enumerate(records)]
    later, earlier = dedup.pairs_sharing_keys([dedup.profile_keys(p) for p in profiles])
    matches = dedup.match_pairs(
        [profiles[i] for i in later.tolist()],
        [profiles[j] for j in earlier.tolist()],
        threshold=threshold,
    )
    seconds = time.perf_counter() - started
    predicted = {(m.household_id.int - 1, m.candidate_household_id.int - 1) for m in matches}
    reasons = Counter(reason.value for m in matches for reason in m.reasons)
    candidates = set(zip(later.tolist(), earlier.tolist(), strict=True))
    return score_predictions(
        records, predicted, candidate_pairs=candidates, reasons=reasons, seconds=seconds
    )


# ---- command line ---------------------------------------------------------------------------

cli = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)


@cli.command("evaluate")
def evaluate_command(
    households: Annotated[int, typer.Option(help="How many registrations to generate.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data).")] = 1,
    threshold: Annotated[float, typer.Option(help="Score at which a pair is reported.")] = (
        dedup.THRESHOLD
    ),
    latin: Annotated[bool, typer.Option(help="Repeats may have names in Latin letters.")] = True,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the figures here.")
    ] = (None),
) -> None:
    """Generate registrations with known duplicates; print dedup precision and recall."""
    records = generate(households, seed=seed, latin=latin)
    result = evaluate(records, threshold=threshold)
    figures = {"households": households, "seed": seed, "threshold": threshold} | result.as_json()
    typer.echo(
        f"{households} registrations, {result.true_pairs} true duplicate pairs: "
        f"precision {result.precision:.4f}, recall {result.recall:.4f}, f1 {result.f1:.4f} "
        f"(blocking recall {result.blocking_recall:.4f}, {result.candidate_pairs} pairs "
        f"scored in {result.seconds:.2f} s)"
    )
    typer.echo("recall by variation: " + json.dumps(result.recall_by_variation))
    typer.echo("false positives by kind: " + json.dumps(result.false_positives_by_kind))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


@cli.command("generate")
def generate_command(
    out: Annotated[Path, typer.Option(help="CSV file to write (bulk import format).")],
    households: Annotated[int, typer.Option(help="How many registrations to generate.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data).")] = 1,
    truth: Annotated[
        Path | None, typer.Option(help="Also write household_ref → truth id (CSV) here.")
    ] = None,
) -> None:
    """Write registrations as a partner's CSV file for `import_cli` (names in Cyrillic)."""
    records = generate(households, seed=seed, latin=False)
    rows = write_csv(records, out)
    if truth is not None:
        write_truth(records, truth)
    typer.echo(f"wrote {len(records)} households ({rows} rows) to {out}")


def csv_rows(records: Iterable[SyntheticHousehold]) -> Iterator[dict[str, str]]:
    """Rows of the bulk import format (one per member; household columns on the head's)."""
    for record in records:
        for index, m in enumerate(record.members):
            row = {
                "household_ref": record.ref,
                "relation": m.relation,
                "family_name": m.family_name,
                "given_name": m.given_name,
                "patronymic": m.patronymic or "",
                "sex": m.sex,
                "date_of_birth": m.birth_date.isoformat(),
                "passport": m.passport or "",
                "id_card": m.id_card or "",
                "idp_certificate": m.idp_certificate or "",
                "member_vulnerabilities": ";".join(m.vulnerabilities),
            }
            if index == 0:
                row |= {
                    "adm1_pcode": record.adm1,
                    "adm2_pcode": record.adm2,
                    "adm3_pcode": record.adm3,
                    "displacement_status": record.displacement_status,
                    "phone": record.phone or "",
                    "address": record.address,
                    "household_vulnerabilities": ";".join(record.vulnerabilities),
                    "consents": ";".join(record.consents),
                    "needs": ";".join(f"{sector}:{severity}" for sector, severity in record.needs),
                }
            yield row


def write_csv(records: Iterable[SyntheticHousehold], path: Path) -> int:
    from .bulk_import import COLUMNS

    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, restval="")
        writer.writeheader()
        for row in csv_rows(records):
            writer.writerow(row)
            count += 1
    return count


def write_truth(records: Iterable[SyntheticHousehold], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["household_ref", "truth", "kind"])
        writer.writerows((r.ref, r.truth, r.kind) for r in records)


if __name__ == "__main__":
    cli()
