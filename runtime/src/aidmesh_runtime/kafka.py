"""How AidMesh's Kafka clients authenticate (ADR 0011).

Every client speaks SASL/SCRAM-SHA-512 (over TLS on a real cluster: `SASL_SSL` and a CA
file) as a principal of its own: each service as itself (`registration`, `shelter`, ...,
granted what the topic catalogue says it produces and consumes, see aidmesh_ops.kafka_acl),
operators' tools (the `aidmesh` CLI, the tests' helpers, the benchmarks) as the operator
(`admin` locally, a superuser).

A password is given directly (`AIDMESH_<SERVICE>_KAFKA_PASSWORD`, or
`AIDMESH_OPS_KAFKA_PASSWORD` for the operator) or, as `deploy/local` does, as a file
`<secrets dir>/<principal>.password`, the secrets dir being `AIDMESH_KAFKA_SECRETS_DIR`
(default `var/secrets/kafka`, where the local scripts write them). Passwords never appear in
a repr or a log line.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

SecurityProtocol = Literal["SASL_PLAINTEXT", "SASL_SSL", "PLAINTEXT"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256"]

DEFAULT_SECRETS_DIR = "var/secrets/kafka"
#: The principal of operators' tools unless AIDMESH_OPS_KAFKA_USERNAME names another.
OPERATOR = "admin"


class KafkaCredentialsMissing(RuntimeError):
    """No password for a principal: names where one was looked for, never a value."""


@dataclass(frozen=True)
class KafkaConnection:
    """Where a client connects and as whom."""

    bootstrap: str
    username: str
    password: str = field(repr=False)
    protocol: SecurityProtocol = "SASL_PLAINTEXT"
    mechanism: SaslMechanism = "SCRAM-SHA-512"
    cafile: str | None = None

    @property
    def authenticated(self) -> bool:
        return self.protocol != "PLAINTEXT"

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.protocol != "SASL_SSL":
            return None
        return ssl.create_default_context(cafile=self.cafile)

    def auth(self) -> dict[str, Any]:
        """aiokafka keyword arguments (producer, consumer, admin) for this principal."""
        if not self.authenticated:
            return {}
        options: dict[str, Any] = {
            "security_protocol": self.protocol,
            "sasl_mechanism": self.mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
        }
        if (context := self._ssl_context()) is not None:
            options["ssl_context"] = context
        return options

    def aiokafka(self) -> dict[str, Any]:
        """`bootstrap_servers` and the authentication keyword arguments."""
        return {"bootstrap_servers": self.bootstrap, **self.auth()}

    def confluent(self) -> dict[str, Any]:
        """librdkafka configuration (confluent-kafka's AdminClient, used for ACLs)."""
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap}
        if self.authenticated:
            config |= {
                "security.protocol": self.protocol,
                "sasl.mechanism": self.mechanism,
                "sasl.username": self.username,
                "sasl.password": self.password,
            }
            if self.cafile:
                config["ssl.ca.location"] = self.cafile
        return config


def read_password(
    username: str, *, password: str | None, secrets_dir: str | Path, variable: str
) -> str:
    """The given password, else `<secrets_dir>/<username>.password`; a clear error if neither."""
    if password:
        return password
    path = Path(secrets_dir) / f"{username}.password"
    if path.exists():
        # The secrets convention's reader: refuses a world-readable, unreadable or empty file.
        from .settings import read_secret_file  # settings imports this module

        return read_secret_file("AIDMESH_KAFKA_SECRETS_DIR", str(path))
    raise KafkaCredentialsMissing(
        f"no Kafka password for principal {username!r}: set {variable}, or put it in"
        f" {path} (AIDMESH_KAFKA_SECRETS_DIR names the directory; `make infra-up`"
        " creates the local ones)"
    )


def operator(bootstrap: str | None = None) -> KafkaConnection:
    """The operator's connection (tools, tests, benchmarks), from the environment."""
    env = os.environ
    username = env.get("AIDMESH_OPS_KAFKA_USERNAME", OPERATOR)
    protocol: SecurityProtocol = env.get("AIDMESH_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")  # type: ignore[assignment]
    return KafkaConnection(
        bootstrap=bootstrap or env.get("AIDMESH_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        username=username,
        password=""
        if protocol == "PLAINTEXT"
        else read_password(
            username,
            password=env.get("AIDMESH_OPS_KAFKA_PASSWORD"),
            secrets_dir=env.get("AIDMESH_KAFKA_SECRETS_DIR", DEFAULT_SECRETS_DIR),
            variable="AIDMESH_OPS_KAFKA_PASSWORD",
        ),
        protocol=protocol,
        mechanism=env.get("AIDMESH_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),  # type: ignore[arg-type]
        cafile=env.get("AIDMESH_KAFKA_SSL_CAFILE"),
    )


def operator_auth() -> dict[str, Any]:
    """aiokafka authentication keyword arguments of the operator (no bootstrap)."""
    return operator().auth()
