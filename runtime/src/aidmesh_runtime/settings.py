"""Settings every service shares. Environment prefix `AIDMESH_`; a service-specific prefix
(`AIDMESH_<SERVICE>_`) overrides it, so one machine can run several services apart.

Secrets (keys, passwords, DSNs with a password) come from the environment or from files,
never from the repository. A setting typed `SecretStr` (or `SecretStr | None`) is a secret:

- `AIDMESH_<SERVICE>_X` or `AIDMESH_X` holds its value, or
- `AIDMESH_<SERVICE>_X_FILE` or `AIDMESH_X_FILE` names a file holding it (Docker and
  Kubernetes mount secrets as files); surrounding whitespace is stripped. A file that is
  missing, unreadable, empty or readable by every user stops the service at start with a
  SecretFileError naming the variable (never the value). Setting both `X` and `X_FILE` under
  one prefix is an error too.

To add one: declare `my_key: SecretStr | None = None` on the service's settings class (no
`_file` field, no reading code) and read it with `required_secret(settings, "my_key",
why=...)`, which raises MissingSecretError naming both variables when it is given neither
way (or `settings.my_key.get_secret_value()` when it is optional). `serve` turns these
errors into a one-line exit message. `SecretStr` keeps the value out of repr(), logs and
tracebacks. In deploy/k8s, list it in `EXTRA_SECRET_FILES` (aidmesh_ops.k8s) so that it is
mounted from a Kubernetes Secret.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from .kafka import (
    DEFAULT_SECRETS_DIR,
    KafkaConnection,
    SaslMechanism,
    SecurityProtocol,
    read_password,
)

ROLES = ("api", "consumer", "relay")
ROLES_PATTERN = r"^\s*(api|consumer|relay)\s*(,\s*(api|consumer|relay)\s*)*$"


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIDMESH_", extra="ignore")

    service_name: ClassVar[str] = "service"
    default_http_port: ClassVar[int] = 8000

    kafka_bootstrap: str = "127.0.0.1:9092"
    #: How the service authenticates to Kafka (ADR 0011): SASL/SCRAM as its own principal,
    #: named after the service unless `kafka_username` says otherwise; SASL_SSL on a real
    #: cluster (with `kafka_ssl_cafile`). The password is `kafka_password`, or the file
    #: `<kafka_secrets_dir>/<principal>.password` (deploy/local writes those).
    kafka_security_protocol: SecurityProtocol = "SASL_PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    kafka_username: str | None = None
    kafka_password: SecretStr | None = None
    kafka_secrets_dir: str = DEFAULT_SECRETS_DIR
    kafka_ssl_cafile: str | None = None
    #: How long the producer keeps a batch the broker has not acknowledged before failing it
    #: (the relay then re-sends it). A broker outage longer than this used to break the
    #: idempotent producer for good; producer.py now replaces it.
    kafka_request_timeout_ms: int = 30_000
    #: How long the producer waits for more records before sending a batch. The relay sends
    #: a whole round of outbox rows back to back, which are batched without waiting, so a
    #: linger would only add to every event's latency (bench/latency.py).
    kafka_linger_ms: int = Field(default=0, ge=0)
    #: Admin DSN of the PostgreSQL server; the service's own database is derived from it
    #: unless `db_dsn` is given (as it should be on a real cluster). Both are secrets (they
    #: may hold a password): `AIDMESH_<SERVICE>_DB_DSN_FILE` works too.
    pg_dsn: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5433/postgres")
    db_dsn: SecretStr | None = None
    db_name: str | None = None
    db_pool_size: int = 10
    http_host: str = "127.0.0.1"
    http_port: int | None = None
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    consumer_group: str | None = None
    consumer_offset_reset: Literal["earliest", "latest"] = "earliest"
    #: Records handled in one database transaction (and one offset commit), at most.
    consumer_max_batch: int = 500
    #: What this process does, comma-separated: `api` (the HTTP endpoints), `consumer` (the
    #: event handlers), `relay` (publishing the outbox). All three by default; a busy
    #: service runs its relay as a process of its own, so publishing and handling each
    #: have a core (ADR 0012). Health, readiness and metrics are served in every role.
    roles: str = Field(default="api,consumer,relay", pattern=ROLES_PATTERN)
    relay_batch_size: int = 500
    #: The largest request body the API takes (413 above it, naming the limit); 1 MiB holds
    #: any real form, a Kobo submission's answers included.
    http_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    relay_poll_interval_s: float = 1.0
    outbox_retention_hours: int = 72
    #: Transient failures (database or broker down) are retried this many times with
    #: exponential backoff before the service reports itself not ready (and keeps trying).
    retry_attempts_before_unready: int = 8
    retry_max_backoff_s: float = 30.0
    #: OTLP/HTTP collector the service sends its traces to (Jaeger locally); an empty value
    #: turns export off (spans are still made, so trace context still flows through).
    otlp_endpoint: str | None = "http://127.0.0.1:4318"
    #: Share of the flows this service starts that are traced (decided by trace id; flows it
    #: continues follow the decision of the service that started them). One flow in ten by
    #: default: a traced event costs about twice the CPU of one that is not (bench/hop.py,
    #: ADR 0012), and a flow not traced costs no span anywhere; its log lines still carry
    #: its trace id. `make up` (deploy/local) traces every flow, for the demo.
    trace_sample_ratio: float = Field(default=0.1, ge=0.0, le=1.0)
    #: Fault injection for the delivery tests only: the process exits at once (as with
    #: kill -9) at this point. Never set in production.
    fault_crash_point: Literal["relay_before_publish", "relay_after_publish"] | None = None
    #: Public keys that verify HTTP bearer tokens (auth.py, ADR 0009): a `<kid>.pem` file or
    #: a directory of them (AIDMESH_AUTH_PUBLIC_KEYS_FILE). Public keys only: the issuer
    #: alone holds the private key. A service with an API refuses to start without a key.
    auth_public_keys_file: Path | None = None
    #: The same inline, `<kid>:<base64 of the 32-byte key>`, comma-separated
    #: (AIDMESH_AUTH_PUBLIC_KEYS); used together with the file if both are set.
    auth_public_keys: str | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        prefix = f"AIDMESH_{cls.service_name.upper()}_"
        specific = EnvSettingsSource(settings_cls, env_prefix=prefix)
        return (
            init_settings,
            specific,
            SecretFileSource(settings_cls, env_prefix=prefix),
            env_settings,
            SecretFileSource(settings_cls, env_prefix="AIDMESH_"),
            file_secret_settings,
        )

    def runs(self, role: str) -> bool:
        """Whether this process has `role` (one of ROLES)."""
        return role in {part.strip() for part in self.roles.split(",")}

    @property
    def source(self) -> str:
        """CloudEvents source of everything this service publishes."""
        return f"/aidmesh/{self.service_name}"

    def kafka_connection(self) -> KafkaConnection:
        """The service's own Kafka principal; a clear error if it has no password."""
        username = self.kafka_username or self.service_name
        password = ""
        if self.kafka_security_protocol != "PLAINTEXT":
            password = read_password(
                username,
                password=self.kafka_password.get_secret_value() if self.kafka_password else None,
                secrets_dir=self.kafka_secrets_dir,
                variable=f"AIDMESH_{self.service_name.upper()}_KAFKA_PASSWORD",
            )
        return KafkaConnection(
            bootstrap=self.kafka_bootstrap,
            username=username,
            password=password,
            protocol=self.kafka_security_protocol,
            mechanism=self.kafka_sasl_mechanism,
            cafile=self.kafka_ssl_cafile,
        )

    @property
    def group_id(self) -> str:
        return self.consumer_group or f"aidmesh-{self.service_name}"

    @property
    def port(self) -> int:
        return self.http_port or self.default_http_port

    @property
    def database(self) -> str:
        return self.db_name or f"aidmesh_{self.service_name}"

    @property
    def database_dsn(self) -> str:
        """The service's own database; locally a database and role named after the service."""
        if self.db_dsn is not None and self.db_dsn.get_secret_value():
            return self.db_dsn.get_secret_value()
        parts = urlsplit(self.pg_dsn.get_secret_value())
        host = parts.netloc.rsplit("@", 1)[-1]
        netloc = f"aidmesh_{self.service_name}@{host}"
        return urlunsplit((parts.scheme, netloc, "/" + self.database, parts.query, ""))


# ---- secrets from files -------------------------------------------------------------------


class SecretSettingError(ValueError):
    """A secret setting is missing or unusable: the service does not start. The message
    names the variable (and the file), never the value."""


class SecretFileError(SecretSettingError):
    """A secret's file is missing, unreadable, empty or readable by every user."""


class MissingSecretError(SecretSettingError):
    """A secret the service cannot run without is given neither way."""


def required_secret(settings: ServiceSettings, name: str, *, why: str) -> str:
    """The value of the secret setting `name`, or MissingSecretError naming its variables
    and saying `why` the service needs it."""
    value = getattr(settings, name)
    if value is None or not value.get_secret_value():
        variable = f"AIDMESH_{settings.service_name.upper()}_{name.upper()}"
        raise MissingSecretError(f"{variable} is not set (nor {variable}_FILE): {why}")
    return str(value.get_secret_value())


def is_secret(field: FieldInfo) -> bool:
    """A `SecretStr` or `SecretStr | None` setting."""
    return field.annotation is SecretStr or set(get_args(field.annotation)) == {
        SecretStr,
        type(None),
    }


def read_secret_file(variable: str, path: str) -> str:
    """The secret held in the file `variable` names, stripped; SecretFileError if the file is
    missing, unreadable, empty or readable by every user."""
    try:
        mode = os.stat(path).st_mode
        if mode & stat.S_IROTH:
            raise SecretFileError(
                f"{variable}: {path} is readable by every user; make it readable by the"
                f" service only (chmod 600, or a Kubernetes Secret with defaultMode 0440)"
            )
        with open(path, encoding="utf-8") as file:
            value = file.read().strip()
    except OSError as exc:
        raise SecretFileError(f"{variable}: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SecretFileError(f"{variable}: {path} is not UTF-8 text") from None
    if not value:
        raise SecretFileError(f"{variable}: {path} is empty")
    return value


class SecretFileSource(PydanticBaseSettingsSource):
    """Each secret setting `x` from the file `<prefix>X_FILE` names (see the module)."""

    def __init__(self, settings_cls: type[BaseSettings], *, env_prefix: str) -> None:
        super().__init__(settings_cls)
        self.env_prefix = env_prefix

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads every field at once

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            if not is_secret(field):
                continue
            variable = f"{self.env_prefix}{name.upper()}"
            path = os.environ.get(f"{variable}_FILE")
            if not path:
                continue
            if os.environ.get(variable):
                raise SecretFileError(
                    f"both {variable} and {variable}_FILE are set: give the secret one way"
                )
            if name in self.current_state:
                continue  # given in code, or under the service's own prefix
            found[name] = read_secret_file(f"{variable}_FILE", path)
        return found
