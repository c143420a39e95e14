"""Duplicate detection: is a new registration a household we already know?

Pure: no database, no clock. Two stages, as record linkage usually goes:

1. Blocking. `blocking_keys` gives each household a handful of short keys (each identity
   document, the phone, and a few name-and-birth keys within the oblast). Candidates for a
   new registration are the households sharing any key, so a registry of millions compares
   a new household with a few others, not with everyone.
2. Scoring. Each candidate pair is scored by rules that name their reasons:
   * deterministic: the same identity document (certain), or the same phone with a similar
     head-of-household name;
   * fuzzy: the head's names compared as transliteration-normalised keys
     (`translit.name_key`, so Cyrillic, official Latin and Russian-style spellings meet)
     with Jaro-Winkler similarity from rapidfuzz; the date of birth, also with day and month
     swapped; the other members; and the location.

The scoring is vectorised over pairs (`rapidfuzz.process.cpdist` and numpy), so the HTTP
path (`find_duplicates`: one new household, a few candidates) and the bulk import
(`match_pairs`: millions of pairs) run the same rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import chain
from operator import attrgetter
from typing import Any
from uuid import UUID

import numpy as np
from aidmesh_contracts import DuplicateReason
from numpy.typing import NDArray
from rapidfuzz import fuzz, process
from rapidfuzz.distance import Indel, JaroWinkler

from .translit import name_key

#: Pairs scoring at least this are reported as possible duplicates (a person decides).
THRESHOLD = 0.8
#: Score of the same phone with a similar head-of-household name.
SAME_PHONE_SCORE = 0.9
#: Head names at least this similar (0..1, Jaro-Winkler on name keys) are "similar".
SIMILAR_NAME = 0.88
#: Below these, two heads are different people even when all else agrees (twins, namesakes):
#: given names by edit similarity (Indel), family names by Jaro-Winkler.
GIVEN_NAME_FLOOR = 0.8
FAMILY_NAME_FLOOR = 0.8
#: Members' names-and-birth-years at least this similar (token set ratio) are "similar".
SIMILAR_MEMBERS = 0.8
#: Members' names-and-birth-years at least this similar make a family the same household
#: even under another head (both with two or more members).
SAME_FAMILY_MEMBERS = 0.95
SAME_FAMILY_SCORE = 0.85
#: Name-and-birth keys use this many leading letters of a name key.
PREFIX = 3
#: A blocking key shared by more households than this identifies no one (a partner's office
#: phone on every form, a placeholder document number): it finds no candidates.
MAX_BLOCK = 200
#: Suspicions queued for one registration, the best scores first: a household registered
#: again and again (or a form filled with the same test data) must not flood the review
#: queue and the household topic with every pair.
MAX_SUSPICIONS = 10

# How much each kind of evidence weighs in the fuzzy score (they add up to 1).
_W_NAME, _W_BIRTH, _W_MEMBERS, _W_LOCATION = 0.5, 0.25, 0.15, 0.10


@dataclass(frozen=True)
class Person:
    family_name: str
    given_name: str
    patronymic: str | None
    birth_date: date | None
    sex: str | None
    #: Normalised "kind:NUMBER", e.g. "passport:ЕК123456".
    documents: frozenset[str]


@dataclass(frozen=True)
class Candidate:
    household_id: UUID
    adm1_pcode: str
    adm3_pcode: str | None
    phone: str | None  # E.164
    head: Person
    members: tuple[Person, ...]  # includes the head


@dataclass(frozen=True)
class Match:
    household_id: UUID
    candidate_household_id: UUID
    score: float  # 0..1
    reasons: frozenset[DuplicateReason]


@dataclass(frozen=True, slots=True)
class Profile:
    """What matching needs of one household, computed once (keys, not names)."""

    household_id: UUID
    adm1: str
    adm3: str
    phone: str
    family: str
    given: str
    patronymic: str
    sex: str
    #: Date of birth of the head as a proleptic ordinal, -1 when unknown.
    birth: int
    #: The same date with day and month swapped, -1 when that is no valid other date.
    birth_swapped: int
    #: Every member as "givenkey+birth year", sorted, space separated.
    members: str
    member_count: int
    #: Date of birth of the eldest member (ordinal): it rarely changes between
    #: registrations, even when another member is named head.
    eldest: int
    documents: frozenset[str]


def profile(household: Candidate) -> Profile:
    head = household.head
    born = head.birth_date
    return Profile(
        household_id=household.household_id,
        adm1=household.adm1_pcode,
        adm3=household.adm3_pcode or "",
        phone=household.phone or "",
        family=name_key(head.family_name),
        given=name_key(head.given_name),
        patronymic=name_key(head.patronymic or ""),
        sex=head.sex or "",
        birth=born.toordinal() if born else -1,
        birth_swapped=swapped_ordinal(born),
        members=" ".join(
            sorted(
                f"{name_key(m.given_name)}{m.birth_date.year if m.birth_date else ''}"
                for m in household.members
            )
        ),
        member_count=len(household.members),
        eldest=min(
            (m.birth_date.toordinal() for m in household.members if m.birth_date), default=-1
        ),
        documents=frozenset(d for m in household.members for d in m.documents),
    )


def swapped_ordinal(born: date | None) -> int:
    """The date with day and month swapped (proleptic ordinal), -1 when no other date."""
    if born is None or born.day > 12 or born.day == born.month:
        return -1
    return date(born.year, born.day, born.month).toordinal()


def blocking_keys(household: Candidate) -> frozenset[str]:
    return profile_keys(profile(household))


def profile_keys(p: Profile) -> frozenset[str]:
    """Keys shared by a household and its likely duplicates.

    Each rule of the scoring has a key that finds its pairs: documents and phone for the
    deterministic rules; for the fuzzy ones, the family name's start with the birth year
    (survives typos later in the name, a swapped day and month, a new hromada), the given
    name's start with the birth day and month in either order (survives a misspelt family
    name), both names' starts without the date (survives a wrong date of birth), and the
    family name with the eldest member's birth date (survives another member named head).
    These keys stay within the oblast, to keep blocks small; one key crosses oblasts: both
    names' starts with the whole birth date, for a family that moved with nothing else in
    common (issue 21: 13 of 395 such pairs were candidates before it).
    """
    keys = {f"d:{document}" for document in p.documents}
    if p.phone:
        keys.add(f"t:{p.phone}")
    family, given = p.family[:PREFIX], p.given[:PREFIX]
    if family and given:
        keys.add(f"n:{p.adm1}:{family}:{given}")
    if p.birth >= 0:
        born = date.fromordinal(p.birth)
        if family:
            keys.add(f"f:{p.adm1}:{family}:{born.year}")
        if given:
            day_month = "".join(sorted((f"{born.month:02}", f"{born.day:02}")))
            keys.add(f"g:{p.adm1}:{given}:{born.year}{day_month}")
    if p.member_count > 1 and p.eldest >= 0 and family:
        keys.add(f"e:{p.adm1}:{family}:{p.eldest}")
    if family and given and p.birth >= 0:
        keys.add(f"m:{family}:{given}:{p.birth}")  # moved: any oblast
    return frozenset(keys)


def pairs_sharing_keys(
    keys: Sequence[Iterable[str]], *, max_block: int = MAX_BLOCK
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Every pair of records that share a blocking key, as index arrays (later, earlier).

    For a batch (a bulk import, an evaluation): `keys[i]` are record i's keys. Vectorised:
    keys are hashed to integers and sorted, so records of one block sit side by side, and
    the pairs at each distance within a block are taken with one comparison of the arrays.
    A key shared by more than `max_block` records (a phone number of an organisation, a
    placeholder document number) says nothing about any pair and is skipped. A hash
    collision only adds a pair to score, never hides one.
    """
    counts = np.fromiter(map(len, keys), dtype=np.int64, count=len(keys))
    records = np.repeat(np.arange(len(keys), dtype=np.int64), counts)
    hashed = np.fromiter(
        (hash(k) for ks in keys for k in ks), dtype=np.int64, count=int(counts.sum())
    )
    order = np.argsort(hashed, kind="stable")
    hashed, records = hashed[order], records[order]
    _, sizes = np.unique(hashed, return_counts=True)
    usable = np.repeat(sizes <= max_block, sizes)
    hashed, records = hashed[usable], records[usable]
    later: list[NDArray[np.int64]] = []
    earlier: list[NDArray[np.int64]] = []
    largest = int(sizes[sizes <= max_block].max(initial=1))
    for distance in range(1, largest):
        same = hashed[distance:] == hashed[:-distance]
        a, b = records[distance:][same], records[:-distance][same]
        later.append(np.maximum(a, b))
        earlier.append(np.minimum(a, b))
    if not later:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    pair_codes = np.unique(
        np.concatenate(later) * len(keys) + np.concatenate(earlier)
    )  # one pair found through several keys is scored once
    pair_codes = pair_codes[pair_codes // len(keys) != pair_codes % len(keys)]
    return pair_codes // len(keys), pair_codes % len(keys)


def find_duplicates(new: Candidate, candidates: Iterable[Candidate]) -> list[Match]:
    """The candidates that may be the same household as `new`, best first."""
    mine = profile(new)
    others = [profile(c) for c in candidates if c.household_id != new.household_id]
    matches = match_pairs([mine] * len(others), others)
    return sorted(matches, key=lambda m: (-m.score, str(m.candidate_household_id)))


def match_pairs(
    new: Sequence[Profile],
    candidates: Sequence[Profile],
    *,
    threshold: float = THRESHOLD,
    workers: int = 1,
) -> list[Match]:
    """Score new[i] against candidates[i] for every i; return the pairs at or above the
    threshold (in input order)."""
    if len(new) != len(candidates):
        raise ValueError("match_pairs compares pairs: give as many new as candidates")
    pairs = np.arange(len(new), dtype=np.int64)
    return match_indexed(
        [*new, *candidates], pairs, pairs + len(new), threshold=threshold, workers=workers
    )


def match_indexed(
    profiles: Sequence[Profile],
    new: NDArray[np.int64],
    candidates: NDArray[np.int64],
    *,
    threshold: float = THRESHOLD,
    workers: int = 1,
) -> list[Match]:
    """`match_pairs` of profiles[new[i]] against profiles[candidates[i]] for every i: each
    profile is turned into columns once, however many pairs it is in (a bulk import's)."""
    if len(new) != len(candidates):
        raise ValueError("match_indexed compares pairs: give as many new as candidates")
    if not len(new):
        return []
    # Columns of the profiles in some pair only (a block lookup brings others along).
    used = np.unique(np.concatenate((new, candidates)))
    columns = _Columns([profiles[i] for i in used.tolist()])
    a = columns.take(np.searchsorted(used, new))
    b = columns.take(np.searchsorted(used, candidates))

    def similarity(x: Any, y: Any, scorer: Any = JaroWinkler) -> NDArray[np.float64]:
        return process.cpdist(
            x, y, scorer=scorer.normalized_similarity, dtype=np.float64, workers=workers
        )

    same_document = np.fromiter(
        (not x.isdisjoint(y) for x, y in zip(a.documents, b.documents, strict=True)),
        dtype=bool,
        count=len(new),
    )
    family = similarity(a.family, b.family)
    # Family and given names entered the other way round are a common slip.
    crossed = np.minimum(similarity(a.family, b.given), similarity(a.given, b.family))
    family = np.maximum(family, crossed)
    # Every rule but the same document needs similar family names (the floor of the fuzzy
    # score, the same family): the other pairs score below any positive threshold, so the
    # rest is computed for the pairs that may reach it only (element by element the same).
    if threshold > 0:
        hopeful = np.flatnonzero(same_document | (family >= min(FAMILY_NAME_FLOOR, SIMILAR_NAME)))
        if len(hopeful) < len(new):
            a, b = a.take(hopeful), b.take(hopeful)
            same_document, family, crossed = (
                same_document[hopeful],
                family[hopeful],
                crossed[hopeful],
            )
            new, candidates = new[hopeful], candidates[hopeful]
        if not len(new):
            return []

    given = np.maximum(similarity(a.given, b.given), crossed)
    both_patronymics = (a.patronymic_len > 0) & (b.patronymic_len > 0)
    patronymic = np.where(both_patronymics, similarity(a.patronymic, b.patronymic), 0.0)
    # A missing patronymic (Latin-script forms often lack one) is no evidence either way.
    name = np.where(
        both_patronymics,
        0.4 * family + 0.3 * given + 0.3 * patronymic,
        (0.4 * family + 0.3 * given) / 0.7,
    )
    # Jaro-Winkler favours a shared start, which is right for typos but not for given
    # names that share one (Олексій and Олександр, often twins): the floor on given names
    # uses the plain edit similarity (Indel) instead.
    given_edit = np.maximum(
        similarity(a.given, b.given, Indel),
        np.minimum(similarity(a.family, b.given, Indel), similarity(a.given, b.family, Indel)),
    )

    same_birth = (a.birth >= 0) & (a.birth == b.birth)
    swapped_birth = ~same_birth & (a.birth_swapped >= 0) & (a.birth_swapped == b.birth)
    both_born = (a.birth >= 0) & (b.birth >= 0)
    a_year, b_year = _years(a.birth), _years(b.birth)
    same_year = both_born & (a_year == b_year)
    birth = np.select(
        [same_birth, swapped_birth, same_year, both_born],
        [1.0, 0.9, 0.4, 0.0],
        default=0.5,  # unknown: no evidence
    )

    both_families = (a.member_count > 1) & (b.member_count > 1)
    member_similarity = (
        process.cpdist(
            a.members, b.members, scorer=fuzz.token_set_ratio, dtype=np.float64, workers=workers
        )
        / 100.0
    )
    members = np.where(both_families, member_similarity, 0.5)

    # Codes of strings (0: the empty string), comparable as integers.
    same_hromada = (a.adm3 == b.adm3) & (a.adm3 != 0)
    same_oblast = a.adm1 == b.adm1
    location = np.select([same_hromada, same_oblast], [1.0, 0.5], default=0.0)

    fuzzy = _W_NAME * name + _W_BIRTH * birth + _W_MEMBERS * members + _W_LOCATION * location
    # Twins, a father and son of the same name, neighbours with a common surname: the rules
    # that keep them apart whatever else agrees.
    different_sex = (a.sex != 0) & (b.sex != 0) & (a.sex != b.sex)
    plausible = (given_edit >= GIVEN_NAME_FLOOR) & (family >= FAMILY_NAME_FLOOR) & ~different_sex
    fuzzy = np.where(plausible, fuzzy, 0.0)

    # The same family named under another head (the spouse came this time): the members
    # and the family name agree even though the heads' names do not.
    same_family = (
        both_families & (member_similarity >= SAME_FAMILY_MEMBERS) & (family >= SIMILAR_NAME)
    )
    fuzzy = np.where(same_family, np.maximum(fuzzy, SAME_FAMILY_SCORE), fuzzy)

    similar_name = (name >= SIMILAR_NAME) & plausible
    same_phone = (a.phone == b.phone) & (a.phone != 0)
    phone_rule = same_phone & similar_name
    score = np.select(
        [same_document, phone_rule], [1.0, np.maximum(fuzzy, SAME_PHONE_SCORE)], default=fuzzy
    )
    score = np.clip(score, 0.0, 1.0)

    flags = (
        (DuplicateReason.SAME_DOCUMENT, same_document),
        (DuplicateReason.SAME_PHONE_SIMILAR_NAME, phone_rule),
        (DuplicateReason.SIMILAR_NAME, similar_name),
        (DuplicateReason.SAME_BIRTH_DATE, same_birth),
        (DuplicateReason.SWAPPED_DAY_MONTH, swapped_birth),
        (DuplicateReason.SIMILAR_MEMBERS, both_families & (member_similarity >= SIMILAR_MEMBERS)),
        (DuplicateReason.SAME_LOCATION, same_hromada),
    )
    found = np.flatnonzero(score >= threshold)
    kinds = [reason for reason, _ in flags]
    matches = []
    for i, j, value, *raised in zip(
        new[found].tolist(),
        candidates[found].tolist(),
        score[found].tolist(),
        *(flag[found].tolist() for _, flag in flags),
        strict=True,
    ):
        reasons = frozenset(reason for reason, up in zip(kinds, raised, strict=True) if up)
        matches.append(
            Match(
                household_id=profiles[i].household_id,
                candidate_household_id=profiles[j].household_id,
                score=round(value, 4),
                reasons=reasons or frozenset({DuplicateReason.SIMILAR_NAME}),
            )
        )
    return matches


class _Columns:
    """Profiles as columns, for vectorised comparison: `take` gives the columns of the
    profiles at some indexes (one per pair), without going back to the profiles."""

    family: NDArray[np.object_]
    given: NDArray[np.object_]
    patronymic: NDArray[np.object_]
    patronymic_len: NDArray[np.int64]
    members: NDArray[np.object_]
    member_count: NDArray[np.int64]
    birth: NDArray[np.int64]
    birth_swapped: NDArray[np.int64]
    sex: NDArray[np.int64]
    phone: NDArray[np.int64]
    adm1: NDArray[np.int64]
    adm3: NDArray[np.int64]
    documents: NDArray[np.object_]

    #: The columns, in the order declared above.
    _FIELDS = tuple(__annotations__)

    def __init__(self, profiles: Sequence[Profile] | None = None) -> None:
        if profiles is None:
            return
        count = len(profiles)

        def objects(name: str) -> NDArray[np.object_]:
            column = np.empty(count, dtype=object)
            column[:] = list(map(attrgetter(name), profiles))
            return column

        def ints(name: str) -> NDArray[np.int64]:
            return np.fromiter(map(attrgetter(name), profiles), dtype=np.int64, count=count)

        def codes(name: str) -> NDArray[np.int64]:
            # Equal strings get equal codes; the empty string gets 0.
            strings = list(map(attrgetter(name), profiles))
            known = dict.fromkeys(chain(("",), strings), 0)
            known.update(zip(known, range(len(known)), strict=True))
            return np.fromiter(map(known.__getitem__, strings), dtype=np.int64, count=count)

        self.family = objects("family")
        self.given = objects("given")
        self.patronymic = objects("patronymic")
        self.patronymic_len = np.fromiter(map(len, self.patronymic), dtype=np.int64, count=count)
        self.members = objects("members")
        self.member_count = ints("member_count")
        self.birth = ints("birth")
        self.birth_swapped = ints("birth_swapped")
        self.sex = codes("sex")
        self.phone = codes("phone")
        self.adm1 = codes("adm1")
        self.adm3 = codes("adm3")
        self.documents = objects("documents")

    def take(self, indexes: NDArray[np.int64]) -> _Columns:
        taken = _Columns()
        for name in self._FIELDS:
            setattr(taken, name, getattr(self, name)[indexes])
        return taken


# Proleptic ordinals of 1 January of each year from 1900 to 2100, to get years vectorised.
_YEAR_STARTS = np.array([date(y, 1, 1).toordinal() for y in range(1900, 2101)], dtype=np.int64)


def _years(ordinals: NDArray[np.int64]) -> NDArray[np.int64]:
    return np.searchsorted(_YEAR_STARTS, ordinals, side="right") + 1899


__all__ = [
    "THRESHOLD",
    "Candidate",
    "Match",
    "Person",
    "Profile",
    "blocking_keys",
    "find_duplicates",
    "match_indexed",
    "match_pairs",
    "pairs_sharing_keys",
    "profile",
    "profile_keys",
    "swapped_ordinal",
]
