"""The grants the topic catalogue implies: least privilege, derived, never written by hand."""

from __future__ import annotations

from aidmesh_contracts.catalogue import CATALOGUE, Sensitivity
from aidmesh_contracts.topics import PROTECTION_CASE, REGISTRATION_INTAKE
from aidmesh_ops.kafka_acl import Grant, grants, principals


def readers(topic: str) -> set[str]:
    return {g.principal for g in grants() if g.name == topic and g.operation == "READ"}


def writers(topic: str) -> set[str]:
    return {g.principal for g in grants() if g.name == topic and g.operation == "WRITE"}


def test_the_protection_topic_is_read_by_audit_alone_and_written_by_protection_alone() -> None:
    assert readers(PROTECTION_CASE) == {"audit"}
    assert writers(PROTECTION_CASE) == {"protection"}


def test_raw_intake_with_personal_data_is_read_by_registration_alone() -> None:
    assert readers(REGISTRATION_INTAKE) == {"registration"}


def test_every_restricted_or_personal_topic_is_read_only_by_its_listed_consumers() -> None:
    for topic in CATALOGUE:
        if topic.sensitivity is not Sensitivity.INTERNAL:
            assert readers(topic.name) == set(topic.consumers), topic.name


def test_each_consumer_reads_its_topics_and_writes_their_dead_letters_nothing_more() -> None:
    for topic in CATALOGUE:
        assert readers(topic.name) == set(topic.consumers), topic.name
        assert writers(topic.name) == set(topic.producers), topic.name
        assert writers(topic.dlq) == set(topic.consumers), topic.dlq
        assert readers(topic.dlq) == set(), topic.dlq  # operators (superusers) replay them


def test_a_consumer_may_only_use_consumer_groups_under_its_own_prefix() -> None:
    groups = [g for g in grants() if g.resource == "group"]
    assert groups
    for grant in groups:
        assert grant == Grant(
            grant.principal, "group", f"aidmesh-{grant.principal}", "prefixed", "READ"
        )


def test_no_grant_uses_a_wildcard_or_a_prefixed_topic() -> None:
    for grant in grants():
        assert "*" not in grant.name
        assert grant.resource == "group" or grant.pattern == "literal"


def test_every_service_is_a_principal_and_no_operator_is() -> None:
    assert {"registration", "shelter", "health", "protection", "audit"} <= set(principals())
    assert "admin" not in principals()
