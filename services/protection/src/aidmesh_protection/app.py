"""Composition root of the protection service."""

from __future__ import annotations

from pathlib import Path

from aidmesh_contracts import (
    NeedAssessed,
    ReferralAccepted,
    ReferralCompleted,
    ReferralDeclined,
    ReferralRequested,
    Sector,
)
from aidmesh_runtime.projections import households
from aidmesh_runtime.service import create_service_app
from fastapi import FastAPI

from . import handlers
from .api import router
from .settings import ProtectionSettings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def build_app(settings: ProtectionSettings) -> FastAPI:
    """The protection service. Raises DataKeyError, before anything starts, when its data
    key is missing: it never stores a narrative it could not encrypt."""
    keyring = settings.keyring()
    consumers = households.need_handlers(
        Sector.PROTECTION,
        _needs_never_wait,
        on_merged=handlers.on_household_merged,
        on_consent_withdrawn=handlers.on_consent_withdrawn,
    )
    # The household projection's handlers (registered, updated, consent, merged) stay; a
    # protection need does not join the projection's waiting room (see on_need_assessed).
    consumers[NeedAssessed] = handlers.on_need_assessed
    consumers[ReferralRequested] = handlers.on_referral_requested
    consumers[ReferralAccepted] = handlers.on_referral_accepted
    consumers[ReferralDeclined] = handlers.on_referral_declined
    consumers[ReferralCompleted] = handlers.on_referral_completed
    app = create_service_app(
        settings=settings,
        migrations=MIGRATIONS,
        extra_migrations=[households.MIGRATIONS],
        handlers=consumers,
        router=router,
        title="AidMesh protection",
        description=(
            "Confidential protection case management. Restricted. Callers present a signed"
            " bearer token with one protection role: protection:caseworker,"
            " protection:supervisor or protection:auditor."
        ),
    )
    app.state.keyring = keyring
    app.state.team_code = settings.team_code
    return app


async def _needs_never_wait(*_args: object) -> None:
    raise AssertionError("protection needs are handled by handlers.on_need_assessed")
