from __future__ import annotations

from typing import Annotated, ClassVar

from aidmesh_contracts.common import Adm1PCode, Code, OrgCode
from aidmesh_runtime.settings import ServiceSettings
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from .domain import SERVICES


class TeamSeed(BaseModel):
    """A mobile medical team the service knows from its first start (the API may change it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    team_code: OrgCode
    home_oblast: Adm1PCode
    oblasts: tuple[Adm1PCode, ...] = ()
    daily_capacity: Annotated[int, Field(ge=1, le=200)]
    services: tuple[Code, ...]

    @field_validator("services")
    @classmethod
    def _known_services(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or set(value) - SERVICES:
            raise ValueError(f"one or more of {', '.join(sorted(SERVICES))}")
        return value


_DEMO_SERVICES = (
    "primary_consultation",
    "chronic_disease_care",
    "ncd_followup",
    "mhpss",
    "vaccination",
    "srh",
)

#: Teams for the demo oblasts (`aidmesh demo`), so that a fresh platform schedules visits.
#: Their capacity is generous: visits the demo completes still fill their day, and a
#: developer runs the demo many times a day on the same database.
#: A real deployment lists its own teams (AIDMESH_HEALTH_SEED_TEAMS='[...]', or '[]' and
#: POST /teams).
DEMO_TEAMS: tuple[TeamSeed, ...] = (
    TeamSeed(
        team_code="MMT-KH-01",
        home_oblast="UA63",
        oblasts=("UA59", "UA74"),
        daily_capacity=60,
        services=_DEMO_SERVICES,
    ),
    TeamSeed(
        team_code="MMT-DN-01",
        home_oblast="UA14",
        oblasts=("UA12",),
        daily_capacity=50,
        services=_DEMO_SERVICES,
    ),
    TeamSeed(
        team_code="MMT-ZP-01",
        home_oblast="UA23",
        oblasts=("UA65", "UA48"),
        daily_capacity=50,
        services=_DEMO_SERVICES,
    ),
    TeamSeed(
        team_code="MMT-KV-01",
        home_oblast="UA80",
        oblasts=("UA32",),
        daily_capacity=50,
        services=_DEMO_SERVICES,
    ),
    TeamSeed(team_code="MMT-OD-01", home_oblast="UA51", daily_capacity=40, services=_DEMO_SERVICES),
    TeamSeed(
        team_code="MMT-LV-01",
        home_oblast="UA46",
        daily_capacity=40,
        services=("primary_consultation", "chronic_disease_care", "mhpss", "vaccination"),
    ),
)


class HealthSettings(ServiceSettings):
    service_name: ClassVar[str] = "health"
    default_http_port: ClassVar[int] = 8103

    #: Teams inserted at start-up when missing (an existing team is left as the API set it).
    seed_teams: tuple[TeamSeed, ...] = DEMO_TEAMS
    #: Visits are planned from this many days after today (Kyiv time): teams plan their
    #: route the day before.
    scheduling_lead_days: Annotated[int, Field(ge=0, le=30)] = 1
    #: How far ahead visits are planned; a request with no room within it waits in the backlog.
    scheduling_horizon_days: Annotated[int, Field(ge=1, le=90)] = 14
    #: The backlog is planned again this often (the horizon moves when the day rolls);
    #: 0 turns the periodic run off (POST /scheduling/run still works).
    scheduling_interval_s: Annotated[float, Field(ge=0)] = 300.0
    #: Missed visits after which a request is closed (household_not_reached).
    max_missed_visits: Annotated[int, Field(ge=1, le=10)] = 3
    timezone: str = "Europe/Kyiv"
    #: P-codes teams may cover besides the official oblasts (domain.OBLASTS), e.g. a
    #: training area. The integration tests use UA90-UA99, which no registered household
    #: has, so that other tests' households on the shared broker never take their capacity.
    extra_oblasts: tuple[Adm1PCode, ...] = ()
    #: AES-256-GCM key (base64 of 32 bytes) sealing clinical notes and diagnoses at rest
    #: (AIDMESH_HEALTH_CLINICAL_KEY, or a file holding it: AIDMESH_HEALTH_CLINICAL_KEY_FILE).
    #: Required, and never committed: deploy/local/services.sh generates a local one into
    #: var/secrets/. Earlier keys stay listed in `clinical_previous_keys` to open older records.
    clinical_key: SecretStr | None = None
    clinical_previous_keys: tuple[SecretStr, ...] = ()
