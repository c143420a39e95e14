"""The one error model of every service's use cases: what they answer instead of doing what
was asked (no I/O here: a domain module may import it and stay pure). ADR 0014.

    NotFound      404  what the request names does not exist (or the caller may not know it)
    Forbidden     403  the caller may not do this
    RuleRefused   422  a rule refuses the request; `field` names the input at fault, if one
    Conflict      409  the stored state does not allow it (a RuleRefused)
    Gone          410  it existed and was erased

A service subclasses them for its own errors (`class WrongState(ShelterRuleError,
Conflict)`); the service factory installs one HTTP mapping for all of them
(`refusal_response`), so every service answers in the same shapes:

    {"detail": [{"loc": ["body", "<field>"], "msg": "<why>", "type": "<code>"}]}  a field's
    {"detail": {"reason": "<code>", "message": "<why>"}}                          a coded one
    {"detail": "<why>"}                                                           any other

In an event handler, any refusal dead-letters the event with its reason: never retried,
never logged as a crash (consumer.py). Messages carry ids and codes, never personal data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar


class Refusal(Exception):
    """What a use case answers instead of doing what was asked."""

    status: ClassVar[int] = 422
    #: The input at fault: a body field's name, or a whole location ("query", "cursor").
    field: str | Sequence[str | int] | None = None
    #: A stable code for programs (`consent_missing`); the message is for people.
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        field: str | Sequence[str | int] | None = None,
        code: str | None = None,
    ) -> None:
        # Subclasses that also derive from ValueError (usable in validators) may be built
        # by ValueError's __init__ instead: the defaults above then hold.
        super().__init__(message)
        self.field = field
        self.code = code

    @property
    def message(self) -> str:
        return str(self)

    @property
    def loc(self) -> tuple[str | int, ...] | None:
        """Where the fault is, as FastAPI's validation errors say it."""
        if self.field is None:
            return None
        if isinstance(self.field, str):
            return ("body", self.field)
        return tuple(self.field)

    def detail(self) -> Any:
        """The `detail` of the HTTP answer (module docstring)."""
        loc = self.loc
        if loc is not None:
            return [{"loc": list(loc), "msg": self.message, "type": self.code or "value_error"}]
        if self.code is not None:
            return {"reason": self.code, "message": self.message}
        return self.message


class RuleRefused(Refusal):
    """A domain rule refuses what was asked (422)."""


class Conflict(RuleRefused):
    """The stored state does not allow what was asked (409)."""

    status = 409


class NotFound(Refusal):
    """What the request names does not exist (404)."""

    status = 404


class Forbidden(Refusal):
    """The caller may not do this (403)."""

    status = 403


class Gone(Refusal):
    """It existed and was erased (410)."""

    status = 410
