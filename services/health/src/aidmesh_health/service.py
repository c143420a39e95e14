"""Health use cases, inside the consuming handler's transaction."""

from __future__ import annotations

from aidmesh_contracts import Envelope, NeedAssessed
from aidmesh_runtime.consumer import HandlerContext
from aidmesh_runtime.projections.households import HouseholdFacts

from . import domain


def visit_completer(partner_org: str):
    async def complete_visit(
        need: NeedAssessed, cause: Envelope, household: HouseholdFacts, ctx: HandlerContext
    ) -> None:
        """A health need, its household known, is met by a mobile medical team visit."""
        visit, delivered = domain.complete_visit(
            need,
            location=household.location,
            household_size=household.size,
            visit_id=ctx.new_id(),
            delivery_id=ctx.new_id(),
            partner_org=partner_org,
            now=ctx.now(),
        )
        visit_envelope = await ctx.outbox.add(ctx.conn, visit, caused_by=cause)
        await ctx.outbox.add(ctx.conn, delivered, caused_by=visit_envelope)
        await ctx.conn.execute(
            """INSERT INTO visits (visit_id, household_id, need_assessment_id, team_code,
                   services_delivered, persons_seen, adm1_pcode, completed_at, delivery_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
            visit.visit_id,
            visit.household_id,
            need.assessment_id,
            visit.team_code,
            sorted(visit.services_delivered),
            visit.persons_seen,
            visit.location.adm1_pcode,
            visit.completed_at,
            delivered.delivery_id,
        )

    return complete_visit
