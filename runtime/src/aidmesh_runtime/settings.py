"""Settings every service shares. Environment prefix `AIDMESH_`; a service-specific prefix
(`AIDMESH_<SERVICE>_`) overrides it, so one machine can run several services apart."""

from __future__ import annotations

from typing import ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr
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
    #: Admin DSN of the PostgreSQL server; the service's own database is derived from it
    #: unless `db_dsn` is given (as it should be on a real cluster).
    pg_dsn: str = "postgresql://postgres@127.0.0.1:5433/postgres"
    db_dsn: str | None = None
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
    #: How long a poll waits for records; also FastStream's pause after an empty poll.
    consumer_batch_timeout_ms: int = 50
    relay_batch_size: int = 500
    relay_poll_interval_s: float = 1.0
    outbox_retention_hours: int = 72
    #: Transient failures (database or broker down) are retried this many times with
    #: exponential backoff before the service reports itself not ready (and keeps trying).
    retry_attempts_before_unready: int = 8
    retry_max_backoff_s: float = 30.0
    #: OTLP/HTTP collector the service sends its traces to (Jaeger locally); an empty value
    #: turns export off (spans are still made, so trace context still flows through).
    otlp_endpoint: str | None = "http://127.0.0.1:4318"
    #: Fault injection for the delivery tests only: the process exits at once (as with
    #: kill -9) at this point. Never set in production.
    fault_crash_point: Literal["relay_before_publish", "relay_after_publish"] | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        specific = EnvSettingsSource(
            settings_cls, env_prefix=f"AIDMESH_{cls.service_name.upper()}_"
        )
        return (init_settings, specific, env_settings, file_secret_settings)

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
        if self.db_dsn:
            return self.db_dsn
        parts = urlsplit(self.pg_dsn)
        host = parts.netloc.rsplit("@", 1)[-1]
        netloc = f"aidmesh_{self.service_name}@{host}"
        return urlunsplit((parts.scheme, netloc, "/" + self.database, parts.query, ""))
