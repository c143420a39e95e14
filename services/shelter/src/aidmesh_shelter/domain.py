"""Shelter rules. Pure: no database, no Kafka, no clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from aidmesh_contracts import (
    AssistanceDelivered,
    DamageLevel,
    Location,
    Modality,
    Money,
    RepairCategory,
    RepairCompleted,
    Sector,
    ShelterCaseOpened,
)


class ShelterRuleError(ValueError):
    """A request that shelter's rules refuse; the message says why."""


class CaseNotOpen(ShelterRuleError):
    pass


@dataclass(frozen=True)
class RepairCaps:
    light: Decimal
    medium: Decimal

    def for_category(self, category: RepairCategory) -> Decimal:
        return self.light if category is RepairCategory.LIGHT else self.medium


@dataclass(frozen=True)
class Case:
    case_id: UUID
    household_id: UUID
    status: str
    damage_level: DamageLevel
    location: Location
    household_size: int


def open_case(
    *,
    case_id: UUID,
    household_id: UUID,
    need_assessment_id: UUID,
    severity: int,
    damage_level: DamageLevel,
    location: Location,
    now: datetime,
) -> ShelterCaseOpened:
    return ShelterCaseOpened(
        case_id=case_id,
        household_id=household_id,
        need_assessment_id=need_assessment_id,
        severity=severity,
        damage_level=damage_level,
        location=location,
        opened_at=now,
    )


def complete_repair(
    case: Case,
    *,
    category: RepairCategory,
    modality: Modality,
    value_uah: Decimal,
    partner_org: str,
    caps: RepairCaps,
    delivery_id: UUID,
    now: datetime,
) -> tuple[RepairCompleted, AssistanceDelivered]:
    """A checked repair completion and the assistance it delivered."""
    if case.status != "open":
        raise CaseNotOpen(f"case {case.case_id} is {case.status}, not open")
    if case.damage_level is DamageLevel.HEAVY:
        raise ShelterRuleError(
            "heavy damage is referred to the state compensation programme, not repaired by us"
        )
    if case.damage_level not in (DamageLevel.UNKNOWN, DamageLevel(category.value)):
        raise ShelterRuleError(
            f"a {category.value} repair does not fit {case.damage_level.value} damage"
        )
    if modality not in (Modality.IN_KIND, Modality.VOUCHER):
        raise ShelterRuleError("repairs are delivered in kind or by voucher")
    cap = caps.for_category(category)
    if value_uah > cap:
        raise ShelterRuleError(f"{value_uah} UAH exceeds the {category.value} repair cap of {cap}")
    value = Money(amount=value_uah)
    repaired = RepairCompleted(
        case_id=case.case_id,
        household_id=case.household_id,
        category=category,
        modality=modality,
        value=value,
        completed_at=now,
    )
    delivered = AssistanceDelivered(
        delivery_id=delivery_id,
        household_id=case.household_id,
        sector=Sector.SHELTER,
        activity=f"shelter.{category.value}_repair",
        modality=modality,
        quantity=Decimal(1),
        unit="dwelling",
        value=value,
        persons_reached=case.household_size,
        partner_org=partner_org,
        location=case.location,
        delivered_at=now,
    )
    return repaired, delivered
