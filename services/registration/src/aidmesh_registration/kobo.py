"""The KoboToolbox registration form, and how its submissions become registrations.

Pure: no I/O. This module is the one place that knows the form's question names (the
XLSForm `name` column, with their groups), documented in services/registration/README.md.

Kobo's REST Services post each submission as flat JSON: `group/question` keys; a repeat
group is a list of objects whose keys carry the repeat's path (`members/given_name`);
select_multiple answers are space-separated codes; metadata such as `meta/instanceID`
(`uuid:...`), `meta/deprecatedID` (on an edited submission: the instanceID it replaces),
`_uuid`, `_submission_time` (UTC, without offset) and `_xform_id_string` come alongside.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aidmesh_contracts import Channel, Sector
from aidmesh_runtime.errors import validation_message
from pydantic import ValidationError

from .domain import HouseholdIn

#: Recorded as the form id when a submission has no `_xform_id_string` (Kobo sends the
#: asset uid there, e.g. "aTEr5MZHhLfRW7bDZXrxZ4").
FORM_ID = "aidmesh_registration_v1"

# Questions, as `group/question` paths. Every answer the mapping reads is named here.
CONSENT = {
    "registration": "consent/registration",  # select_one yes_no
    "data_sharing": "consent/data_sharing",  # select_one yes_no
    "referral": "consent/referral",  # select_one yes_no
}
LOCATION = {
    "adm1_pcode": "location/adm1",  # select_one oblast P-code (UA63)
    "adm2_pcode": "location/adm2",  # select_one raion P-code, choice_filter on adm1
    "adm3_pcode": "location/adm3",  # select_one hromada P-code, choice_filter on adm2
}
ADDRESS = "location/address"  # text
DISPLACEMENT_STATUS = "household/displacement_status"  # select_one idp returnee ...
PHONE = "household/phone"  # text (any common format)
HOUSEHOLD_FLAGS = "household/vulnerabilities"  # select_multiple vulnerability codes
HEAD_GROUP = "head"  # group: the head of household
MEMBERS_REPEAT = "members"  # repeat: the other members (with `relation`)
#: Questions of the head group and of each repeat entry (same names in both).
PERSON = {
    "family_name": "family_name",  # text, Ukrainian Cyrillic
    "given_name": "given_name",  # text
    "patronymic": "patronymic",  # text, optional
    "sex": "sex",  # select_one female male
    "date_of_birth": "dob",  # date
    "relation": "relation",  # select_one (repeat only; the head's is "head")
    "document_type": "document_type",  # select_one passport id_card idp_certificate none
    "document_number": "document_number",  # text, relevant if document_type != none
    "vulnerabilities": "member_flags",  # select_multiple disability chronic_illness ...
}
NEEDS_GROUP = "needs"
#: Per sector: `needs/<sector>_severity` (select_one 1-5; blank = not assessed) and details.
NEED_DETAILS = {
    Sector.SHELTER: {
        "damage_level": "needs/shelter_damage",  # select_one light medium heavy unknown
        "tenure": "needs/shelter_tenure",  # select_one owner tenant collective_centre hosted
        "heating_available": "needs/shelter_heating",  # select_one yes_no
    },
    Sector.HEALTH: {"services_needed": "needs/health_services"},  # select_multiple
    Sector.PROTECTION: {"concern_codes": "needs/protection_concerns"},  # select_multiple
}
ASSESSED_BY = "meta/assessed_by"  # calculate: the organisation code (the token's, or 403)

META_INSTANCE_ID = "meta/instanceID"
META_DEPRECATED_ID = "meta/deprecatedID"
UUID_KEY = "_uuid"
SUBMISSION_TIME = "_submission_time"
FORM_ID_KEY = "_xform_id_string"

_MULTIPLE = {"services_needed", "concern_codes"}


@dataclass(frozen=True)
class KoboMeta:
    """Who the submission is, whichever way it maps."""

    submission_id: str
    replaces: str | None
    form_id: str | None
    submitted_at: datetime | None


@dataclass(frozen=True)
class Reason:
    """Why a submission cannot be mapped: the question (or field) and the rule. No values."""

    field: str
    reason: str

    def as_json(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason}


class Unmappable(Exception):
    def __init__(self, reasons: list[Reason]) -> None:
        super().__init__("; ".join(f"{r.field}: {r.reason}" for r in reasons))
        self.reasons = reasons


_SUBMISSION_ID = re.compile(r"^[A-Za-z0-9:_.-]{1,128}$")


def meta(answers: Mapping[str, Any]) -> KoboMeta:
    """The submission's id (instanceID, else `uuid:` + _uuid, else a hash of the answers
    so that a resend without ids is still recognised), what it replaces, and when."""
    submission_id = _text(answers.get(META_INSTANCE_ID))
    if not submission_id and _text(answers.get(UUID_KEY)):
        submission_id = f"uuid:{_text(answers.get(UUID_KEY))}"
    if not submission_id or not _SUBMISSION_ID.match(submission_id):
        canonical = json.dumps(answers, sort_keys=True, ensure_ascii=False, default=str)
        submission_id = "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:40]
    replaces = _text(answers.get(META_DEPRECATED_ID)) or None
    if replaces and not _SUBMISSION_ID.match(replaces):
        replaces = None
    return KoboMeta(
        submission_id=submission_id,
        replaces=replaces,
        form_id=_text(answers.get(FORM_ID_KEY)) or None,
        submitted_at=_submission_time(answers.get(SUBMISSION_TIME)),
    )


def _submission_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)  # Kobo writes UTC


def to_household(answers: Mapping[str, Any], *, partner_org: str) -> HouseholdIn:
    """The registration a Kobo submission describes, or Unmappable naming the questions."""
    body, origin = _household_body(answers, partner_org=partner_org)
    try:
        return HouseholdIn.model_validate(body)
    except ValidationError as exc:
        reasons = [Reason(_question(e["loc"], origin), validation_message(e)) for e in exc.errors()]
        raise Unmappable(list(dict.fromkeys(reasons))) from None


def _household_body(
    answers: Mapping[str, Any], *, partner_org: str
) -> tuple[dict[str, Any], dict[tuple[Any, ...], str]]:
    """The HouseholdIn JSON and, for each of its fields, the question it came from."""
    origin: dict[tuple[Any, ...], str] = {}

    location = {}
    for key, question in LOCATION.items():
        if value := _text(answers.get(question)):
            location[key] = value
        origin[("location", key)] = question
    origin[("location",)] = LOCATION["adm1_pcode"]

    members = [_person(_group(answers, HEAD_GROUP), relation="head")]
    for key, question in PERSON.items():
        origin[("members", 0, key)] = f"{HEAD_GROUP}/{question}"
    origin[("members", 0)] = HEAD_GROUP
    repeat = answers.get(MEMBERS_REPEAT)
    for index, entry in enumerate(repeat if isinstance(repeat, list) else [], start=1):
        if not isinstance(entry, Mapping):
            continue
        members.append(_person(_entry(entry), relation=None))
        for key, question in PERSON.items():
            origin[("members", index, key)] = f"{MEMBERS_REPEAT}[{index}]/{question}"
        origin[("members", index)] = f"{MEMBERS_REPEAT}[{index}]"
    for i in range(len(members)):
        group = HEAD_GROUP if i == 0 else f"{MEMBERS_REPEAT}[{i}]"
        origin[("members", i, "documents")] = f"{group}/{PERSON['document_number']}"
    origin[("members",)] = MEMBERS_REPEAT

    consents = [purpose for purpose, q in CONSENT.items() if _yes(answers.get(q))]
    origin[("consents",)] = CONSENT["registration"]

    needs = []
    for index, sector in enumerate(s for s in Sector if _text(answers.get(_severity(s)))):
        severity = _text(answers.get(_severity(sector)))
        need: dict[str, Any] = {"sector": sector.value, "severity": severity}
        details: dict[str, Any] = {}
        for key, question in NEED_DETAILS.get(sector, {}).items():
            value = answers.get(question)
            if key in _MULTIPLE:
                codes = _codes(value)
                if codes:
                    details[key] = codes
            elif key == "heating_available":
                if _text(value):
                    details[key] = _yes(value)
            elif value := _text(value):
                details[key] = value
            origin[("needs", index, "details", sector.value, key)] = question
        if details:
            need["details"] = details
        needs.append(need)
        origin[("needs", index, "severity")] = _severity(sector)
        origin[("needs", index)] = _severity(sector)

    body: dict[str, Any] = {
        "channel": Channel.KOBO.value,
        "partner_org": partner_org,
        "location": location,
        "members": members,
        "vulnerabilities": _codes(answers.get(HOUSEHOLD_FLAGS)),
        "consents": consents,
        "needs": needs,
    }
    for key, question in (
        ("displacement_status", DISPLACEMENT_STATUS),
        ("address", ADDRESS),
        ("phone", PHONE),
        ("assessed_by", ASSESSED_BY),
    ):
        if value := _text(answers.get(question)):
            body[key] = value
        origin[(key,)] = question
    origin[("vulnerabilities",)] = HOUSEHOLD_FLAGS
    return body, origin


def _person(answers: Mapping[str, Any], *, relation: str | None) -> dict[str, Any]:
    person: dict[str, Any] = {}
    for key in ("family_name", "given_name", "patronymic", "sex", "date_of_birth"):
        if value := _text(answers.get(PERSON[key])):
            person[key] = value
    if relation := relation or _text(answers.get(PERSON["relation"])):
        person["relation"] = relation
    kind = _text(answers.get(PERSON["document_type"]))
    number = _text(answers.get(PERSON["document_number"]))
    if number and kind and kind != "none":
        person["documents"] = [{"kind": kind, "number": number}]
    elif number:
        person["document_number"] = number
    person["vulnerabilities"] = _codes(answers.get(PERSON["vulnerabilities"]))
    return person


def _group(answers: Mapping[str, Any], group: str) -> dict[str, Any]:
    """A group's answers by question name."""
    prefix = group + "/"
    return {k.removeprefix(prefix): v for k, v in answers.items() if k.startswith(prefix)}


def _entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A repeat entry's answers by question name (its keys carry the repeat's full path)."""
    return {k.rsplit("/", 1)[-1]: v for k, v in entry.items()}


def _severity(sector: Sector) -> str:
    return f"{NEEDS_GROUP}/{sector.value}_severity"


def _question(loc: tuple[Any, ...], origin: Mapping[tuple[Any, ...], str]) -> str:
    """The Kobo question a validation error is about (the longest known prefix of its loc)."""
    for end in range(len(loc), 0, -1):
        if loc[:end] in origin:
            return origin[loc[:end]]
    return ".".join(str(p) for p in loc) or "submission"


def _text(value: Any) -> str:
    if value is None or isinstance(value, (dict, list)):
        return ""
    return str(value).strip()


def _yes(value: Any) -> bool:
    return _text(value).lower() in {"yes", "true", "1", "так"}


def _codes(value: Any) -> list[str]:
    return _text(value).split()


#: Every question the mapping reads, for the README and for tests.
QUESTIONS: tuple[str, ...] = (
    *CONSENT.values(),
    *LOCATION.values(),
    ADDRESS,
    DISPLACEMENT_STATUS,
    PHONE,
    HOUSEHOLD_FLAGS,
    *(f"{HEAD_GROUP}/{q}" for k, q in PERSON.items() if k != "relation"),
    *(f"{MEMBERS_REPEAT}/{q}" for q in PERSON.values()),
    *(_severity(s) for s in Sector),
    *(q for details in NEED_DETAILS.values() for q in details.values()),
    ASSESSED_BY,
    META_INSTANCE_ID,
    META_DEPRECATED_ID,
)
