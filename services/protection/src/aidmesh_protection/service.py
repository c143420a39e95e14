"""Protection use cases, inside the consuming handler's transaction."""

from __future__ import annotations

from aidmesh_contracts import NeedAssessed, Sector
from aidmesh_runtime.consumer import HandlerContext

from . import domain


async def on_need_assessed(event: NeedAssessed, ctx: HandlerContext) -> None:
    """An assessed protection need opens a confidential case."""
    if event.sector is not Sector.PROTECTION:
        return
    opened = domain.open_case_from_need(event, random_id=ctx.new_id(), now=ctx.now())
    await ctx.conn.execute(
        """INSERT INTO protection_cases (case_ref, household_id, source, need_assessment_id,
               severity, concern_codes, status, opened_at)
           VALUES ($1, $2, $3, $4, $5, $6, 'intake', $7)""",
        opened.case_ref,
        opened.household_id,
        opened.source.value,
        event.assessment_id,
        opened.severity,
        sorted(opened.concern_codes),
        opened.opened_at,
    )
    await ctx.publish(opened)
