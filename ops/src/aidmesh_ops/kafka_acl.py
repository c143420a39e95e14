"""Kafka principals and their grants, derived from the topic catalogue (ADR 0011).

One principal per actor the catalogue names (the services, and the partners' systems that
write intake or read assistance). A producer may write its topics; a consumer may read its
topics, write their dead-letter topics (it dead-letters what it cannot handle) and use the
consumer groups named `aidmesh-<principal>...`. Nothing else: the broker denies what no ACL
allows (`allow.everyone.if.no.acl.found=false`), so the restricted protection topic is read
by audit alone and written by protection alone. Operators (`admin`) are superusers.

`apply` makes a cluster match: it upserts the principals' SCRAM credentials (optional: on a
managed cluster users may come from elsewhere) and creates missing ACLs, deleting the ones
our principals hold that the catalogue no longer gives them. It uses confluent-kafka's admin
client: aiokafka has no ACL or SCRAM-credential API.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aidmesh_contracts.catalogue import CATALOGUE, Topic
from aidmesh_runtime.kafka import KafkaConnection
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

Operation = Literal["READ", "WRITE", "DESCRIBE"]
Resource = Literal["topic", "group"]
Pattern = Literal["literal", "prefixed"]

#: SCRAM iterations of the credentials we create (Kafka's minimum is 4096).
SCRAM_ITERATIONS = 8192
TIMEOUT_S = 30.0


@dataclass(frozen=True, order=True)
class Grant:
    principal: str
    resource: Resource
    name: str
    pattern: Pattern
    operation: Operation

    def __str__(self) -> str:
        star = "*" if self.pattern == "prefixed" else ""
        return f"User:{self.principal} {self.operation} {self.resource} {self.name}{star}"


def group_prefix(principal: str) -> str:
    """The consumer groups a principal may use start with this."""
    return f"aidmesh-{principal}"


def principals(catalogue: Sequence[Topic] = CATALOGUE) -> list[str]:
    return sorted({p for t in catalogue for p in (*t.producers, *t.consumers)})


def grants(catalogue: Sequence[Topic] = CATALOGUE) -> list[Grant]:
    """Every grant the catalogue implies, sorted, without duplicates."""
    wanted: set[Grant] = set()
    for topic in catalogue:
        for producer in topic.producers:
            for op in ("WRITE", "DESCRIBE"):
                wanted.add(Grant(producer, "topic", topic.name, "literal", op))  # type: ignore[arg-type]
        for consumer in topic.consumers:
            for op in ("READ", "DESCRIBE"):
                wanted.add(Grant(consumer, "topic", topic.name, "literal", op))  # type: ignore[arg-type]
            for op in ("WRITE", "DESCRIBE"):
                wanted.add(Grant(consumer, "topic", topic.dlq, "literal", op))  # type: ignore[arg-type]
            wanted.add(Grant(consumer, "group", group_prefix(consumer), "prefixed", "READ"))
    return sorted(wanted)


# ---- applying them to a cluster -------------------------------------------------------------

_RESOURCE = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP}
_PATTERN = {"literal": ResourcePatternType.LITERAL, "prefixed": ResourcePatternType.PREFIXED}


def _binding(grant: Grant) -> AclBinding:
    return AclBinding(
        _RESOURCE[grant.resource],
        grant.name,
        _PATTERN[grant.pattern],
        f"User:{grant.principal}",
        "*",
        AclOperation[grant.operation],
        AclPermissionType.ALLOW,
    )


def _grant(binding: AclBinding) -> Grant | None:
    """Our Grant for an ACL binding of the shape we create; None for any other ACL."""
    resource = {v: k for k, v in _RESOURCE.items()}.get(binding.restype)
    pattern = {v: k for k, v in _PATTERN.items()}.get(binding.resource_pattern_type)
    operation = binding.operation.name
    if (
        resource is None
        or pattern is None
        or operation not in ("READ", "WRITE", "DESCRIBE")
        or binding.permission_type != AclPermissionType.ALLOW
        or binding.host != "*"
        or not binding.principal.startswith("User:")
    ):
        return None
    return Grant(
        binding.principal.removeprefix("User:"), resource, binding.name, pattern, operation
    )  # type: ignore[arg-type]


def principal_password(principal: str, secrets_dir: Path) -> str:
    """The principal's password from `<secrets_dir>/<principal>.password`, generated (0600)
    when the file does not exist yet."""
    path = secrets_dir / f"{principal}.password"
    if path.exists() and (existing := path.read_text().strip()):
        return existing
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    password = secrets.token_urlsafe(24)
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_text(password)
    tmp.replace(path)
    return password


@dataclass(frozen=True)
class Applied:
    users: list[str]
    created: list[Grant]
    deleted: list[Grant]
    kept: int


def _wait(futures: dict[object, object]) -> None:
    failures = []
    for key, future in futures.items():
        try:
            future.result(timeout=TIMEOUT_S)  # type: ignore[attr-defined]
        except Exception as exc:
            failures.append(f"{key}: {exc}")
    if failures:
        raise RuntimeError("Kafka refused: " + "; ".join(failures))


def apply(
    connection: KafkaConnection,
    *,
    wanted: Iterable[Grant] | None = None,
    secrets_dir: Path | None,
) -> Applied:
    """Make the cluster's principals and ACLs match the catalogue. `secrets_dir` None leaves
    users alone (a managed cluster's users come from its operator)."""
    wanted = sorted(set(wanted if wanted is not None else grants()))
    ours = {g.principal for g in wanted}
    admin = AdminClient(connection.confluent())

    users: list[str] = []
    if secrets_dir is not None:
        upserts = [
            UserScramCredentialUpsertion(
                principal,
                ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS),
                principal_password(principal, secrets_dir).encode(),
            )
            for principal in sorted(ours)
        ]
        _wait(admin.alter_user_scram_credentials(upserts, request_timeout=TIMEOUT_S))
        users = sorted(ours)

    everything = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        None,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    existing_bindings = admin.describe_acls(everything, request_timeout=TIMEOUT_S).result(
        timeout=TIMEOUT_S
    )
    existing = {
        g for b in existing_bindings if (g := _grant(b)) is not None and g.principal in ours
    }
    missing = [g for g in wanted if g not in existing]
    stale = sorted(existing - set(wanted))
    if missing:
        _wait(
            admin.create_acls([_binding(g) for g in missing], request_timeout=TIMEOUT_S)  # type: ignore[arg-type]
        )
    if stale:
        filters = [
            AclBindingFilter(
                _RESOURCE[g.resource],
                g.name,
                _PATTERN[g.pattern],
                f"User:{g.principal}",
                "*",
                AclOperation[g.operation],
                AclPermissionType.ALLOW,
            )
            for g in stale
        ]
        _wait(admin.delete_acls(filters, request_timeout=TIMEOUT_S))  # type: ignore[arg-type]
    return Applied(users=users, created=missing, deleted=stale, kept=len(wanted) - len(missing))
