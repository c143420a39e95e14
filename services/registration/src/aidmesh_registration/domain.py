"""Registration rules: what a valid registration is, and what it tells the other sectors.

Pure: no database, no Kafka, no clock (today's date and ids are passed in).

Three layers:
- inputs (`HouseholdIn`, `HouseholdPatch`, ...): what a field office, a partner or a form
  submits, validated so that a refusal names its field and reason, never the value;
- state (`Household`, `Member`, `Document`, `ConsentRecord`): a household as the registry
  holds it;
- rules: the screening, the shareable events (ids, counts, codes, flags; never a name),
  what an update changed, and how consents follow a merge.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Protocol, Self
from uuid import UUID

from aidmesh_contracts import (
    Channel,
    Composition,
    ConsentPurpose,
    DisplacementStatus,
    HouseholdRegistered,
    HouseholdUpdated,
    Location,
    NeedAssessed,
    Sector,
    Vulnerability,
)
from aidmesh_contracts.common import FspCode, OrgCode, Severity
from aidmesh_contracts.events.assessment import NeedDetails
from aidmesh_runtime import rules
from aidmesh_runtime.rules import RuleRefused
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PastDate,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from . import dedup
from .iban import normalise_iban
from .phones import normalise_phone
from .reference import oblast_pcodes
from .translit import name_key, to_latin

#: No one alive was born earlier; a date before it is a typing error (0001-01-01 was taken).
EARLIEST_BIRTH = date(1900, 1, 1)

# ---- errors the use cases raise (the runtime answers 404 / 409 / 410 / 422, rules.py) ----


class Refused(RuleRefused):
    """A request that is well-formed but breaks a rule that needs the stored state (422):
    `loc` names the input at fault as FastAPI's validation errors do."""

    def __init__(self, loc: Sequence[str | int], msg: str, *, kind: str = "refused") -> None:
        super().__init__(msg, field=tuple(loc), code=kind)


class NotFound(rules.NotFound):
    pass


class Conflict(rules.Conflict):
    pass


class Gone(rules.Gone):
    """The household was erased: its personal data no longer exists (HTTP 410)."""


# ---- codes ------------------------------------------------------------------------------


class Sex(StrEnum):
    FEMALE = "female"
    MALE = "male"


class Relation(StrEnum):
    HEAD = "head"
    SPOUSE = "spouse"
    CHILD = "child"
    PARENT = "parent"
    SIBLING = "sibling"
    GRANDCHILD = "grandchild"
    OTHER_RELATIVE = "other_relative"
    NON_RELATIVE = "non_relative"


class DocumentKind(StrEnum):
    PASSPORT = "passport"
    ID_CARD = "id_card"
    IDP_CERTIFICATE = "idp_certificate"


class HouseholdStatus(StrEnum):
    ACTIVE = "active"
    MERGED = "merged"
    ERASED = "erased"  # personal data destroyed (crypto-shredding); ids and codes remain


class SuspicionStatus(StrEnum):
    OPEN = "open"
    MERGED = "merged"
    DISMISSED = "dismissed"
    SUPERSEDED = "superseded"  # one of the pair was merged into a third household
    ERASED = "erased"  # one of the pair was erased


class ErasureReason(StrEnum):
    """Why a household's personal data is erased (a code: never free text)."""

    DATA_SUBJECT_REQUEST = "data_subject_request"  # the household asked
    CONSENT_WITHDRAWN = "consent_withdrawn"  # consent to registration itself withdrawn
    REGISTERED_IN_ERROR = "registered_in_error"
    LEGAL_OBLIGATION = "legal_obligation"


#: Vulnerabilities that describe one person (the others describe the household).
MEMBER_FLAGS = frozenset(
    {Vulnerability.DISABILITY, Vulnerability.CHRONIC_ILLNESS, Vulnerability.PREGNANT_OR_LACTATING}
)

# ---- names ------------------------------------------------------------------------------

# The Ukrainian alphabet (no Ё Ы Э Ъ), apostrophes of every kind people type, and hyphens.
_UKRAINIAN_WORD = re.compile(r"^[А-ЩЬЮЯЄІЇҐа-щьюяєіїґ][А-ЩЬЮЯЄІЇҐа-щьюяєіїґ'’ʼ`-]*$")
# Latin letters, with the diacritics of older and foreign romanisations (Šewčenko, Jurij),
# for names as partners' lists, EU registrations and bank files write them (issue 21).
_LATIN_WORD = re.compile(r"^[A-Za-zÀ-ÖØ-öø-ſ][A-Za-zÀ-ÖØ-öø-ſ'’ʼ`-]*$")
_PATRONYMIC_ENDINGS = (
    *("ович", "евич", "йович", "івна", "ївна", "ївич", "ічна", "инична"),
    # Their romanisations: official (Petrivna, Ivanovych) and older (Ivanovich, Petrovna).
    *("ovych", "evych", "ivna", "yivna", "ovich", "evich", "ovna", "evna"),
)


def _name_words(text: str) -> list[str]:
    """The words of a name, each wholly in Ukrainian Cyrillic or wholly in Latin letters.
    A word mixing the two (a Latin К typed into Коваленко) is a typing error: refused."""
    words = text.split()
    if not words:
        raise ValueError("must not be empty")
    if not all(_UKRAINIAN_WORD.match(w) or _LATIN_WORD.match(w) for w in words):
        raise ValueError(
            "must be written in Ukrainian Cyrillic or in Latin letters, one script per word"
            " (apostrophes and hyphens allowed)"
        )
    return words


def _name_part(text: str) -> str:
    return " ".join(_name_words(text))


def _full_name(text: str) -> str:
    words = _name_words(text)
    if len(words) < 2:
        raise ValueError("needs at least a given name and a family name")
    return " ".join(words)


NamePart = Annotated[
    str, StringConstraints(min_length=1, max_length=100), AfterValidator(_name_part)
]
FullName = Annotated[
    str, StringConstraints(min_length=2, max_length=200), AfterValidator(_full_name)
]


@dataclass(frozen=True)
class Names:
    family: str
    given: str
    patronymic: str | None


def split_full_name(full_name: str) -> Names:
    """Split a name written in one field.

    The convention of our forms (and of the demo) is "Given Patronymic Family" (Олена
    Петрівна Коваленко); officers copying from a passport write "Family Given Patronymic"
    (Коваленко Олена Петрівна), recognised by the patronymic's ending in last place. Two
    words are "Given Family". With more words, the first is given, the last family, and the
    rest the patronymic.
    """
    words = full_name.split()
    if len(words) == 2:
        return Names(family=words[1], given=words[0], patronymic=None)
    if len(words) == 3 and _is_patronymic(words[2]) and not _is_patronymic(words[1]):
        return Names(family=words[0], given=words[1], patronymic=words[2])
    return Names(family=words[-1], given=words[0], patronymic=" ".join(words[1:-1]) or None)


def _is_patronymic(word: str) -> bool:
    return word.lower().endswith(_PATRONYMIC_ENDINGS)


def name_keys(*names: str | None) -> list[str]:
    """Search keys of a person's names: each whole name and each part of a compound one
    (Шевчук-Затонська is found as "Шевчук" too), in either script."""
    keys: set[str] = set()
    for name in names:
        if not name:
            continue
        keys.add(name_key(name))
        keys.update(name_key(part) for part in re.split(r"[\s-]+", name) if part)
    keys.discard("")
    return sorted(keys)


# ---- documents ---------------------------------------------------------------------------

# Latin letters that look like Cyrillic ones, as typed in passport series (EK → ЕК).
_HOMOGLYPHS = str.maketrans("ABCEHIKMOPTX", "АВСЕНІКМОРТХ")
_DOCUMENT_FORMATS: dict[DocumentKind, tuple[re.Pattern[str], str]] = {
    DocumentKind.PASSPORT: (
        re.compile(r"^[А-ЩЬЮЯЄІЇҐ]{2}\d{6}$"),
        "a passport number is two Cyrillic letters and six digits (ЕК123456)",
    ),
    DocumentKind.ID_CARD: (
        re.compile(r"^\d{9}$"),
        "an ID card number is nine digits",
    ),
    DocumentKind.IDP_CERTIFICATE: (
        re.compile(r"^\d{4}-\d{10}$"),
        "an IDP certificate number is four digits, a hyphen and ten digits (1234-5678901234)",
    ),
}


def normalise_document(kind: DocumentKind, raw: str) -> str:
    """The document number in its one stored form, or ValueError saying what it should be."""
    number = re.sub(r"[\s.]", "", raw).upper()
    if kind is DocumentKind.PASSPORT:
        number = number.translate(_HOMOGLYPHS)
    if kind is DocumentKind.IDP_CERTIFICATE and re.fullmatch(r"\d{14}", number):
        number = f"{number[:4]}-{number[4:]}"
    pattern, rule = _DOCUMENT_FORMATS[kind]
    if not pattern.match(number):
        raise ValueError(f"not a valid {kind.value} number: {rule}")
    return number


def infer_document(raw: str) -> tuple[DocumentKind, str]:
    """A number given without its kind (the old `document_number` field): whichever format
    it has."""
    for kind in DocumentKind:
        try:
            return kind, normalise_document(kind, raw)
        except ValueError:
            continue
    raise ValueError(
        "not a passport (two Cyrillic letters and six digits), ID card (nine digits) or"
        " IDP certificate number (four digits, a hyphen and ten digits)"
    )


def normalise_document_query(raw: str) -> str:
    """A document number typed into a search box, in its stored form if it has one."""
    try:
        return infer_document(raw)[1]
    except ValueError:
        return re.sub(r"\s", "", raw).upper()


# ---- inputs -----------------------------------------------------------------------------


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


Phone = Annotated[
    str,
    StringConstraints(min_length=1, max_length=32),
    AfterValidator(normalise_phone),
    Field(
        description="Contact phone in any common format; stored as E.164 (+380501234567).",
        examples=["+380 50 123 45 67", "050 123 45 67"],
    ),
]
Address = Annotated[str, StringConstraints(min_length=1, max_length=500)]
Iban = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    AfterValidator(normalise_iban),
    Field(
        description="The household's bank account for cash transfers: a Ukrainian IBAN (UA and"
        " 27 characters, check digits verified), spaces allowed. Optional; stored sealed, shown"
        " only to readers of the household and in a provider's payment file, never published.",
        examples=["UA21 3223 1300 0002 6007 2335 6600 1"],
    ),
]


class DocumentIn(Input):
    kind: DocumentKind
    number: Annotated[str, StringConstraints(min_length=1, max_length=32)] = Field(
        examples=["ЕК123456"]
    )

    @field_validator("number")
    @classmethod
    def _number_has_the_format_of_its_kind(cls, number: str, info: ValidationInfo) -> str:
        kind = info.data.get("kind")
        return normalise_document(kind, number) if kind is not None else number


class MemberIn(Input):
    """A household member: names in Ukrainian Cyrillic (their official Latin form is
    computed) or in Latin letters as a partner's list has them (kept as given; search and
    deduplication compare both scripts), either as `family_name`, `given_name` and
    `patronymic`, or (older clients) as one `full_name`."""

    member_id: UUID | None = Field(
        default=None, description="On update: the member this entry keeps (from GET)."
    )
    family_name: NamePart | None = Field(default=None, examples=["Коваленко"])
    given_name: NamePart | None = Field(default=None, examples=["Олена"])
    patronymic: NamePart | None = Field(default=None, examples=["Петрівна"])
    full_name: FullName | None = Field(
        default=None,
        description="Read only when the names above are absent: 'Given Patronymic Family'.",
        examples=["Олена Петрівна Коваленко"],
    )
    sex: Sex
    date_of_birth: Annotated[
        PastDate,
        Field(ge=EARLIEST_BIRTH, description="In the past, and not before 1900-01-01."),
    ]
    relation: Relation
    documents: list[DocumentIn] = Field(default=[], max_length=10)
    document_number: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = Field(
        default=None,
        description="Older clients: one document number; its kind follows from its format.",
        examples=["ЕК123456"],
    )
    vulnerabilities: set[Vulnerability] = Field(
        default=set(), description="This person's flags: disability, chronic_illness, ..."
    )

    @model_validator(mode="before")
    @classmethod
    def _names_from_full_name(cls, data: Any) -> Any:
        if not isinstance(data, dict) or any(
            data.get(k) for k in ("family_name", "given_name", "patronymic")
        ):
            return data
        full = data.get("full_name")
        if isinstance(full, str):
            try:
                names = split_full_name(_full_name(full.strip()))
            except ValueError:
                return data  # the full_name field reports it
            data = {
                **data,
                "family_name": names.family,
                "given_name": names.given,
                "patronymic": names.patronymic,
            }
        return data

    @field_validator("document_number")
    @classmethod
    def _document_number_has_a_known_format(cls, number: str | None) -> str | None:
        return None if number is None else infer_document(number)[1]

    @field_validator("vulnerabilities")
    @classmethod
    def _person_flags_only(cls, flags: set[Vulnerability]) -> set[Vulnerability]:
        if not flags <= MEMBER_FLAGS:
            raise ValueError(
                "a member's flags are disability, chronic_illness and pregnant_or_lactating;"
                " the household's go in the household's vulnerabilities"
            )
        return flags

    @model_validator(mode="after")
    def _names_given(self) -> Self:
        if not self.family_name or not self.given_name:
            raise ValueError("family_name and given_name are required (or a full_name)")
        return self

    def all_documents(self) -> tuple[Document, ...]:
        found = [Document(d.kind, d.number) for d in self.documents]
        if self.document_number:
            found.append(Document(*infer_document(self.document_number)))
        return tuple(dict.fromkeys(found))  # once each, in order

    def to_member(self, member_id: UUID) -> Member:
        assert self.family_name and self.given_name  # checked by _names_given
        return Member(
            member_id=member_id,
            family_name=self.family_name,
            given_name=self.given_name,
            patronymic=self.patronymic,
            sex=self.sex,
            date_of_birth=self.date_of_birth,
            relation=self.relation,
            documents=self.all_documents(),
            vulnerabilities=frozenset(self.vulnerabilities),
            written_name=self.full_name if self._written_in_one_field() else None,
        )

    def _written_in_one_field(self) -> bool:
        """Whether the names were read from `full_name` (an older client's one field), so
        that the name is kept as that client wrote it."""
        return self.full_name is not None and split_full_name(self.full_name) == Names(
            self.family_name or "", self.given_name or "", self.patronymic
        )


class LocationIn(Location):
    """P-codes down to the hromada where known. A finer code implies its parents (a hromada
    code starts with its raion's, which starts with its oblast's), so they may be omitted;
    when given, they must agree. The oblast must be one of the official first-level codes."""

    @model_validator(mode="before")
    @classmethod
    def _parents_from_finer_codes(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        adm3, adm2 = data.get("adm3_pcode"), data.get("adm2_pcode")
        if isinstance(adm3, str) and not adm2 and re.fullmatch(r"UA\d{7}", adm3):
            data["adm2_pcode"] = adm2 = adm3[:6]
        if isinstance(adm2, str) and not data.get("adm1_pcode") and re.fullmatch(r"UA\d{4}", adm2):
            data["adm1_pcode"] = adm2[:4]
        return data

    @field_validator("adm1_pcode")
    @classmethod
    def _known_oblast(cls, code: str) -> str:
        if code not in oblast_pcodes():
            raise ValueError(f"unknown oblast P-code {code!r} (see the OCHA COD-AB list)")
        return code


class NeedIn(Input):
    sector: Sector
    severity: Severity
    details: NeedDetails | None = None

    @model_validator(mode="before")
    @classmethod
    def _details_kind_from_sector(cls, data: Any) -> Any:
        # Clients need not repeat the sector inside details: it is implied.
        if isinstance(data, dict) and isinstance(data.get("details"), dict):
            details = data["details"]
            if "kind" not in details and "sector" in data:
                data = {**data, "details": {"kind": data["sector"], **details}}
        return data

    @model_validator(mode="after")
    def _details_match_sector(self) -> Self:
        if self.details is not None and self.details.kind != self.sector.value:
            raise ValueError(f"details are for {self.details.kind}, not {self.sector}")
        return self


def _one_head(members: list[MemberIn]) -> list[MemberIn]:
    heads = sum(1 for m in members if m.relation is Relation.HEAD)
    if heads != 1:
        raise ValueError(f"exactly one member must be the head of household, found {heads}")
    return members


def _one_need_per_sector(needs: list[NeedIn]) -> list[NeedIn]:
    sectors = [n.sector for n in needs]
    if len(sectors) != len(set(sectors)):
        raise ValueError("at most one need per sector")
    return needs


#: A partner's own reference of a household: letters, digits and . _ / - (no spaces).
PartnerRef = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
]


#: Providers one household may consent to share its details with at registration: a
#: handful operate in an area; more is a form filled in wrong.
MAX_RECIPIENTS = 10


class HouseholdIn(Input):
    """A registration as a field office, hotline, partner or form submits it."""

    channel: Channel
    partner_org: OrgCode | None = None
    partner_ref: PartnerRef | None = Field(
        default=None,
        description="The registering organisation's own reference of the household (its"
        " case or beneficiary id), to find it again: GET /households?partner_ref=. Never"
        " published.",
        examples=["KH-2026-00123"],
    )
    location: LocationIn
    displacement_status: DisplacementStatus
    size: Annotated[
        int | None,
        Field(ge=1, le=99, description="Number of members; if given, must match `members`."),
    ] = None
    address: Address | None = None
    phone: Phone | None = None
    iban: Iban | None = None
    members: list[MemberIn] = Field(min_length=1, max_length=99)
    vulnerabilities: set[Vulnerability] = Field(
        default=set(), description="Flags screened for the household (more are derived)."
    )
    consents: set[ConsentPurpose] = Field(min_length=1)
    data_sharing_with: set[FspCode] = Field(
        default=set(),
        max_length=MAX_RECIPIENTS,
        description="The financial service providers the household agrees its details may be"
        " given to, to be paid by them (issue 24): one consent to data sharing per provider,"
        " recorded with the others. A provider's payment file holds only households that"
        " consented to sharing with that provider; `data_sharing` in `consents` is not enough.",
        examples=[["privatbank"]],
    )
    needs: list[NeedIn] = []
    assessed_by: OrgCode | None = Field(
        default=None,
        description="Who assessed the needs and recorded the consents. Left out: the caller's"
        " organisation (the token's `org`); another one is refused (403).",
    )

    # Field validators (not one model validator) so that a refusal names its field.
    @field_validator("members")
    @classmethod
    def _members_fit_household(
        cls, members: list[MemberIn], info: ValidationInfo
    ) -> list[MemberIn]:
        size = info.data.get("size")
        if size is not None and len(members) != size:
            raise ValueError(f"size is {size} but {len(members)} members are listed")
        return _one_head(members)

    @field_validator("consents")
    @classmethod
    def _registration_consented(cls, consents: set[ConsentPurpose]) -> set[ConsentPurpose]:
        if ConsentPurpose.REGISTRATION not in consents:
            raise ValueError("consent for 'registration' is required to register a household")
        return consents

    @field_validator("needs")
    @classmethod
    def _needs(cls, needs: list[NeedIn]) -> list[NeedIn]:
        return _one_need_per_sector(needs)

    @model_validator(mode="after")
    def _size_from_members(self) -> Self:
        if self.size is None:
            self.size = len(self.members)
        return self

    def to_household(
        self, *, household_id: UUID, member_ids: Sequence[UUID], registered_at: datetime
    ) -> Household:
        return Household(
            household_id=household_id,
            registered_at=registered_at,
            channel=self.channel,
            partner_org=self.partner_org,
            location=Location(**self.location.model_dump()),
            displacement_status=self.displacement_status,
            address=self.address,
            phone=self.phone,
            iban=self.iban,
            members=tuple(
                m.to_member(member_id)
                for m, member_id in zip(self.members, member_ids, strict=True)
            ),
            vulnerabilities=frozenset(self.vulnerabilities),
            consents=frozenset(self.consents),
            data_sharing_with=frozenset(self.data_sharing_with),
            partner_ref=self.partner_ref,
        )


class HouseholdPatch(Input):
    """An update: the fields given replace the stored ones; absent fields stay.

    `members` replaces the whole list (give `member_id` to keep a member's id); `needs`
    adds or replaces the need of each sector named; `address`, `phone` and `iban` may be
    null to clear them. Consent has its own endpoints.
    """

    channel: Channel = Field(default=Channel.FIELD_OFFICE, description="How the change came in.")
    partner_org: OrgCode | None = None
    assessed_by: OrgCode | None = Field(
        default=None,
        description="Who assessed the needs given. Left out: the caller's organisation (the"
        " token's `org`); another one is refused (403).",
    )
    location: LocationIn | None = None
    displacement_status: DisplacementStatus | None = None
    address: Address | None = None
    phone: Phone | None = None
    iban: Iban | None = None
    members: list[MemberIn] | None = Field(default=None, min_length=1, max_length=99)
    vulnerabilities: set[Vulnerability] | None = None
    needs: list[NeedIn] | None = None

    @field_validator("location", "displacement_status", "members", "vulnerabilities", "needs")
    @classmethod
    def _not_cleared(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            raise ValueError(f"{info.field_name} cannot be cleared; leave it out to keep it")
        if info.field_name == "members":
            return _one_head(value)
        if info.field_name == "needs":
            return _one_need_per_sector(value)
        return value


#: Who recorded or decided something is the caller's organisation: a body naming another
#: one is refused (API), never believed.
BY_CALLER = (
    " Left out: the caller's organisation (the token's `org`); another one is refused (403)."
)


class ConsentIn(Input):
    purpose: ConsentPurpose
    recipient: FspCode | None = Field(
        default=None,
        description="For purpose data_sharing: the financial service provider the household"
        " agrees its details may be given to, to be paid by it. Left out: the purpose in"
        " general (which names no provider, so puts no household in a provider's file).",
    )
    recorded_by: OrgCode | None = Field(
        default=None, description="The organisation recording it." + BY_CALLER
    )

    @field_validator("recipient")
    @classmethod
    def _only_data_sharing_has_recipients(cls, recipient: str | None, info: ValidationInfo) -> Any:
        purpose = info.data.get("purpose")
        if recipient is not None and purpose is not ConsentPurpose.DATA_SHARING:
            raise ValueError("only a consent to data_sharing names a recipient")
        return recipient


class ConsentWithdrawalIn(Input):
    recipient: FspCode | None = Field(
        default=None,
        description="The financial service provider whose data_sharing consent is withdrawn."
        " Left out: the consent to the purpose in general.",
    )
    recorded_by: OrgCode | None = Field(
        default=None, description="The organisation recording the withdrawal." + BY_CALLER
    )


class MergeIn(Input):
    decided_by: OrgCode | None = Field(
        default=None, description="The organisation that decided." + BY_CALLER
    )
    survivor_household_id: UUID | None = Field(
        default=None,
        description="Which of the two stays; by default the earlier registration.",
    )


class DismissIn(Input):
    decided_by: OrgCode | None = Field(
        default=None, description="The organisation that decided." + BY_CALLER
    )


class MergeIntoIn(Input):
    into: UUID = Field(description="The household that stays.")
    decided_by: OrgCode | None = Field(
        default=None, description="The organisation that decided." + BY_CALLER
    )


class ErasureIn(Input):
    reason_code: ErasureReason = Field(description="Why the personal data is erased.")
    requested_by: OrgCode | None = Field(
        default=None, description="The team or organisation requesting it." + BY_CALLER
    )


# ---- state ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Document:
    kind: DocumentKind
    number: str

    def key(self) -> str:
        """As dedup compares documents: "passport:ЕК123456"."""
        return f"{self.kind.value}:{self.number}"


@dataclass(frozen=True)
class Member:
    member_id: UUID
    family_name: str
    given_name: str
    patronymic: str | None
    sex: Sex
    date_of_birth: date
    relation: Relation
    documents: tuple[Document, ...] = ()
    vulnerabilities: frozenset[Vulnerability] = frozenset()
    #: The name as an older client wrote it in one field, when it did.
    written_name: str | None = None
    #: Numbers a partner's list gave in no known format (issue 21): kept as given, sealed,
    #: shown to officers to verify, never searched or matched.
    unverified_documents: tuple[Document, ...] = ()

    @property
    def full_name(self) -> str:
        if self.written_name:
            return self.written_name
        return " ".join(n for n in (self.given_name, self.patronymic, self.family_name) if n)

    def latin(self) -> Names:
        return Names(
            family=to_latin(self.family_name),
            given=to_latin(self.given_name),
            patronymic=to_latin(self.patronymic) if self.patronymic else None,
        )

    def name_keys(self) -> list[str]:
        return name_keys(self.family_name, self.given_name, self.patronymic)

    def personal(self) -> tuple[Any, ...]:
        """Everything about the person, to tell whether an update changed it."""
        return (
            self.family_name,
            self.given_name,
            self.patronymic,
            self.sex,
            self.date_of_birth,
            self.relation,
            frozenset(self.documents),
            self.vulnerabilities,
            self.unverified_documents,
        )

    def as_person(self) -> dedup.Person:
        return dedup.Person(
            family_name=self.family_name,
            given_name=self.given_name,
            patronymic=self.patronymic,
            birth_date=self.date_of_birth,
            sex=self.sex.value,
            documents=frozenset(d.key() for d in self.documents),
        )


@dataclass(frozen=True)
class Household:
    household_id: UUID
    registered_at: datetime
    channel: Channel
    partner_org: str | None
    location: Location
    displacement_status: DisplacementStatus
    address: str | None
    phone: str | None
    members: tuple[Member, ...]
    #: Flags declared for the household; the screening adds those the members imply.
    vulnerabilities: frozenset[Vulnerability] = frozenset()
    #: The purposes consented to in general (what the sectors are told).
    consents: frozenset[ConsentPurpose] = frozenset()
    #: The financial service providers it consented to share its details with (issue 24).
    data_sharing_with: frozenset[str] = frozenset()
    status: HouseholdStatus = HouseholdStatus.ACTIVE
    merged_into: UUID | None = None
    version: int = 1
    #: The partner's own reference of it (issue 21): never published.
    partner_ref: str | None = None
    #: Its bank account (a Ukrainian IBAN), for cash transfers (issue 24): sealed, never
    #: published; only a provider's payment file holds it.
    iban: str | None = None

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def head(self) -> Member:
        return next(m for m in self.members if m.relation is Relation.HEAD)

    def candidate(self) -> dedup.Candidate:
        return dedup.Candidate(
            household_id=self.household_id,
            adm1_pcode=self.location.adm1_pcode,
            adm3_pcode=self.location.adm3_pcode,
            phone=self.phone,
            head=self.head.as_person(),
            members=tuple(m.as_person() for m in self.members),
        )

    def blocking_keys(self) -> frozenset[str]:
        return dedup.blocking_keys(self.candidate())

    def profile(self) -> dedup.Profile:
        """`dedup.profile(self.candidate())`, without the candidate and its persons in
        between (a bulk import profiles millions of households)."""
        head, members = self.head, self.members
        born = head.date_of_birth
        return dedup.Profile(
            household_id=self.household_id,
            adm1=self.location.adm1_pcode,
            adm3=self.location.adm3_pcode or "",
            phone=self.phone or "",
            family=name_key(head.family_name),
            given=name_key(head.given_name),
            patronymic=name_key(head.patronymic or ""),
            sex=head.sex.value,
            birth=born.toordinal(),
            birth_swapped=dedup.swapped_ordinal(born),
            members=" ".join(
                sorted(f"{name_key(m.given_name)}{m.date_of_birth.year}" for m in members)
            ),
            member_count=len(members),
            eldest=min(m.date_of_birth.toordinal() for m in members),
            documents=frozenset(d.key() for m in members for d in m.documents),
        )


@dataclass(frozen=True)
class ConsentRecord:
    consent_id: UUID
    household_id: UUID
    purpose: ConsentPurpose
    recorded_by: str
    recorded_at: datetime
    withdrawn_by: str | None = None
    withdrawn_at: datetime | None = None
    ended_reason: str | None = None  # 'withdrawn', 'merged' or 'erased'
    #: For data sharing, the one financial service provider it is for; None: in general.
    recipient: str | None = None

    @property
    def active(self) -> bool:
        return self.withdrawn_at is None


# ---- rules ------------------------------------------------------------------------------


class _Person(Protocol):
    @property
    def sex(self) -> Sex: ...
    @property
    def date_of_birth(self) -> date: ...
    @property
    def relation(self) -> Relation: ...
    @property
    def vulnerabilities(self) -> Any: ...


def age_on(born: date, day: date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def composition(members: Iterable[_Person], *, today: date) -> Composition:
    counts: dict[str, int] = {}
    for member in members:
        age = age_on(member.date_of_birth, today)
        band = "0_17" if age < 18 else "18_59" if age < 60 else "60_plus"
        key = f"{member.sex.value}_{band}"
        counts[key] = counts.get(key, 0) + 1
    return Composition(**counts)


#: Weights of the screening score: how much each flag adds to a household's priority.
SCREENING_WEIGHTS: dict[Vulnerability, int] = {
    Vulnerability.UNACCOMPANIED_MINOR: 4,
    Vulnerability.CHILD_HEADED: 3,
    Vulnerability.DISABILITY: 3,
    Vulnerability.ELDERLY_HEADED: 2,
    Vulnerability.CHRONIC_ILLNESS: 2,
    Vulnerability.PREGNANT_OR_LACTATING: 2,
    Vulnerability.FEMALE_HEADED: 1,
    Vulnerability.LARGE_FAMILY: 1,
}


class ScreeningLevel(StrEnum):
    NONE = "none"
    LOW = "low"  # score 1-2
    MEDIUM = "medium"  # 3-4
    HIGH = "high"  # 5 or more


@dataclass(frozen=True)
class Screening:
    """The vulnerability screening result: the flags found and a priority score."""

    flags: frozenset[Vulnerability]
    score: int
    level: ScreeningLevel

    def as_json(self) -> dict[str, Any]:
        return {"flags": sorted(self.flags), "score": self.score, "level": self.level.value}


def screen(
    members: Sequence[_Person], *, declared: Iterable[Vulnerability], today: date
) -> Screening:
    """Declared household flags, the members' own flags, and what the composition shows:
    the head's age and sex, three or more children (a large family in Ukrainian law), a
    child alone."""
    flags = set(declared)
    for member in members:
        flags.update(member.vulnerabilities)
    head = next((m for m in members if m.relation is Relation.HEAD), None)
    if head is not None:
        head_age = age_on(head.date_of_birth, today)
        if head_age >= 60:
            flags.add(Vulnerability.ELDERLY_HEADED)
        if head_age < 18:
            flags.add(Vulnerability.CHILD_HEADED)
            if len(members) == 1:
                flags.add(Vulnerability.UNACCOMPANIED_MINOR)
        if head.sex is Sex.FEMALE:
            flags.add(Vulnerability.FEMALE_HEADED)
    if sum(1 for m in members if age_on(m.date_of_birth, today) < 18) >= 3:
        flags.add(Vulnerability.LARGE_FAMILY)
    score = sum(SCREENING_WEIGHTS[f] for f in flags)
    level = (
        ScreeningLevel.NONE
        if score == 0
        else ScreeningLevel.LOW
        if score <= 2
        else ScreeningLevel.MEDIUM
        if score <= 4
        else ScreeningLevel.HIGH
    )
    return Screening(flags=frozenset(flags), score=score, level=level)


def screening_of(household: HouseholdIn | Household, *, today: date) -> Screening:
    return screen(list(household.members), declared=household.vulnerabilities, today=today)


def household_registered(
    household: HouseholdIn | Household,
    *,
    household_id: UUID,
    now: datetime,
    screening: Screening | None = None,
) -> HouseholdRegistered:
    """The shareable facts of a registration: ids, counts, codes and flags. No names.

    `screening`: the household's `screening_of` on `now`'s date, when already known."""
    today = now.date()
    location = household.location
    return HouseholdRegistered(
        household_id=household_id,
        registered_at=now,
        channel=household.channel,
        partner_org=household.partner_org,
        # A Location (frozen) as it is; a LocationIn as the Location it names.
        location=location if type(location) is Location else Location(**location.model_dump()),
        displacement_status=household.displacement_status,
        size=len(household.members),
        composition=composition(household.members, today=today),
        vulnerabilities=(screening or screening_of(household, today=today)).flags,
        consents=frozenset(household.consents),
    )


def household_updated(
    household: Household,
    *,
    changed: frozenset[str],
    now: datetime,
    channel: Channel,
    partner_org: str | None,
) -> HouseholdUpdated:
    """The whole new shareable state, and which facts moved (personal ones by name only)."""
    today = now.date()
    return HouseholdUpdated(
        household_id=household.household_id,
        updated_at=now,
        channel=channel,
        partner_org=partner_org,
        changed=changed,
        location=household.location,
        displacement_status=household.displacement_status,
        size=household.size,
        composition=composition(household.members, today=today),
        vulnerabilities=screening_of(household, today=today).flags,
    )


def needs_assessed(
    household: HouseholdIn | HouseholdPatch,
    *,
    household_id: UUID,
    assessment_ids: list[UUID],
    now: datetime,
    default_assessor: str,
    needs: Sequence[NeedIn] | None = None,
) -> list[NeedAssessed]:
    chosen = list(household.needs or []) if needs is None else list(needs)
    return [
        NeedAssessed(
            assessment_id=assessment_id,
            household_id=household_id,
            sector=need.sector,
            severity=need.severity,
            assessed_at=now,
            assessed_by=household.assessed_by or household.partner_org or default_assessor,
            details=need.details,
        )
        for need, assessment_id in zip(chosen, assessment_ids, strict=True)
    ]


@dataclass(frozen=True)
class CurrentNeed:
    sector: Sector
    severity: int
    details: NeedDetails | None


def changed_needs(patch: Sequence[NeedIn], current: Iterable[CurrentNeed]) -> list[NeedIn]:
    """The needs of a patch that differ from the current need of their sector."""
    now = {n.sector: (n.severity, n.details) for n in current}
    return [n for n in patch if now.get(n.sector) != (n.severity, n.details)]


def apply_patch(household: Household, patch: HouseholdPatch, *, new_member_id: Any) -> Household:
    """The household after the patch. Raises Refused for a member_id not in it."""
    given = patch.model_fields_set
    updates: dict[str, Any] = {}
    if patch.location is not None:
        updates["location"] = Location(**patch.location.model_dump())
    if patch.displacement_status is not None:
        updates["displacement_status"] = patch.displacement_status
    if "address" in given:
        updates["address"] = patch.address
    if "phone" in given:
        updates["phone"] = patch.phone
    if "iban" in given:
        updates["iban"] = patch.iban
    if patch.vulnerabilities is not None:
        updates["vulnerabilities"] = frozenset(patch.vulnerabilities)
    if patch.members is not None:
        known = {m.member_id for m in household.members}
        members = []
        for index, member in enumerate(patch.members):
            if member.member_id is not None and member.member_id not in known:
                raise Refused(
                    ("body", "members", index, "member_id"), "is not a member of this household"
                )
            members.append(member.to_member(member.member_id or new_member_id()))
        if len({m.member_id for m in members}) != len(members):
            raise Refused(("body", "members"), "the same member_id is listed twice")
        updates["members"] = tuple(members)
    return replace(household, **updates)


def changes(before: Household, after: Household, *, today: date) -> frozenset[str]:
    """Which facts an update changed, as HouseholdUpdated names them."""
    found = set()
    if before.location != after.location:
        found.add("location")
    if before.displacement_status != after.displacement_status:
        found.add("displacement_status")
    if before.size != after.size:
        found.add("size")
    if composition(before.members, today=today) != composition(after.members, today=today):
        found.add("composition")
    if screening_of(before, today=today).flags != screening_of(after, today=today).flags:
        found.add("vulnerabilities")
    if sorted(m.personal() for m in before.members) != sorted(
        m.personal() for m in after.members
    ) or {m.member_id for m in before.members} != {m.member_id for m in after.members}:
        found.add("members")
    if (before.phone, before.address) != (after.phone, after.address):
        found.add("contact")
    if before.iban != after.iban:
        found.add("bank_account")  # that it changed, never what it is
    return frozenset(found)


# ---- merges -----------------------------------------------------------------------------


def same_person(a: Member, b: Member) -> bool:
    """Whether two members of merged registrations are one person: a shared document, or
    the same date of birth with the same family and given name keys."""
    if set(a.documents) & set(b.documents):
        return True
    return (
        a.date_of_birth == b.date_of_birth
        and name_key(a.family_name) == name_key(b.family_name)
        and name_key(a.given_name) == name_key(b.given_name)
    )


def documents_to_carry(survivor: Household, merged: Household) -> list[tuple[Member, Document]]:
    """Documents of the merged registration's members that the survivor's same person lacks,
    so that a search or a later registration with them finds the survivor."""
    carried = []
    for theirs in merged.members:
        ours = next((m for m in survivor.members if same_person(m, theirs)), None)
        if ours is None:
            continue
        carried.extend((ours, d) for d in theirs.documents if d not in ours.documents)
    return carried


@dataclass(frozen=True)
class ConsentPlan:
    #: Consents of the merged household to record on the survivor (with their who and when).
    record: list[ConsentRecord] = field(default_factory=list)
    #: The survivor's active consents the merged household withdrew later.
    withdraw: list[tuple[ConsentRecord, ConsentRecord]] = field(default_factory=list)


def consents_after_merge(
    survivor: Sequence[ConsentRecord], merged: Sequence[ConsentRecord]
) -> ConsentPlan:
    """The household's latest decision per purpose (and recipient: a provider's consent to
    data sharing is a decision of its own) wins, whichever registration holds it: a consent
    given only in the merged registration moves to the survivor, and a withdrawal recorded
    there after the survivor's consent withdraws it."""
    plan = ConsentPlan()
    subjects = {(r.purpose, r.recipient) for r in [*survivor, *merged]}
    for purpose, recipient in sorted(subjects, key=lambda s: (s[0].value, s[1] or "")):
        decisions: list[tuple[datetime, bool, ConsentRecord]] = []
        for record in [*survivor, *merged]:
            if (record.purpose, record.recipient) != (purpose, recipient):
                continue
            decisions.append((record.recorded_at, True, record))
            if record.withdrawn_at is not None and record.ended_reason == "withdrawn":
                decisions.append((record.withdrawn_at, False, record))
        if not decisions:
            continue
        _, given, latest = max(decisions, key=lambda d: (d[0], not d[1]))
        active = next(
            (r for r in survivor if r.purpose is purpose and r.recipient == recipient and r.active),
            None,
        )
        if given and active is None:
            plan.record.append(latest)
        elif not given and active is not None and latest in merged:
            plan.withdraw.append((active, latest))
    return plan
