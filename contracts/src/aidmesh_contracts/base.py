"""The base of every event payload and the registry of event types.

An event type is a CloudEvents `type` string, `org.aidmesh.<context>.<entity>.<verb>.v<N>`,
bound to exactly one Pydantic model and one topic. The registry is what consumers use to
turn a `ce_type` header back into a model, and what the tests iterate to check naming,
schemas and examples.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable
from typing import ClassVar, TypeVar
from uuid import UUID

from .common import FrozenModel

EVENT_TYPE_PATTERN = re.compile(r"^org\.aidmesh\.[a-z]+\.[a-z_]+\.[a-z_]+\.v[1-9]\d*$")


class Event(FrozenModel):
    """A business fact. Metadata (id, time, source, trace) lives in the envelope, not here."""

    event_type: ClassVar[str]
    topic: ClassVar[str]
    #: What `subject()` returns (the Kafka key and `ce_subject`), for the AsyncAPI document.
    subject_description: ClassVar[str] = (
        "The household id (UUID): every event about one household is on one partition, in order."
    )

    def subject(self) -> str:
        """The aggregate this event is about: the Kafka key and the CloudEvents subject."""
        household_id: UUID | None = getattr(self, "household_id", None)
        if household_id is None:
            raise NotImplementedError(f"{type(self).__name__} must define subject()")
        return str(household_id)


EVENT_TYPES: dict[str, type[Event]] = {}


E = TypeVar("E", bound=Event)


def event(*, type: str, topic: str) -> Callable[[builtins.type[E]], builtins.type[E]]:
    """Class decorator: register a model as the payload of one event type on one topic."""

    if not EVENT_TYPE_PATTERN.fullmatch(type):
        raise ValueError(f"event type {type!r} does not match {EVENT_TYPE_PATTERN.pattern}")

    def register(cls: builtins.type[E]) -> builtins.type[E]:
        if type in EVENT_TYPES:
            raise ValueError(f"event type {type!r} registered twice")
        cls.event_type = type
        cls.topic = topic
        EVENT_TYPES[type] = cls
        return cls

    return register
