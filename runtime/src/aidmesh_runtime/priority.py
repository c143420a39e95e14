"""How sectors rank households: points for the need's severity, the household's
vulnerability flags and its size; more points, served earlier. Pure (a domain module may
import it). A sector adds its own points on top (shelter: the damage to the home)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

#: Points per vulnerability flag (flags not listed count 0), as the sectors agreed them.
VULNERABILITY_POINTS: Mapping[str, int] = MappingProxyType(
    {
        "unaccompanied_minor": 15,
        "child_headed": 15,
        "disability": 10,
        "elderly_headed": 10,
        "chronic_illness": 8,
        "pregnant_or_lactating": 8,
        "female_headed": 6,
        "large_family": 6,
    }
)


@dataclass(frozen=True)
class HouseholdPoints:
    """Points that move a household up a sector's queue."""

    per_severity: int = 10
    vulnerability: Mapping[str, int] = field(default_factory=lambda: VULNERABILITY_POINTS)
    #: Vulnerability points count up to two levels of severity: flags move a household up
    #: among similar needs, never above a far more severe one.
    vulnerability_max: int = 20
    #: Members beyond this many each add `per_extra_member`, up to `size_max` points.
    size_free: int = 3
    per_extra_member: int = 2
    size_max: int = 10

    def points(self, *, severity: int, vulnerabilities: Iterable[str], size: int) -> dict[str, int]:
        """Each part's points and their `total`."""
        parts = {
            "severity": severity * self.per_severity,
            "vulnerability": min(
                self.vulnerability_max, sum(self.vulnerability.get(v, 0) for v in vulnerabilities)
            ),
            "size": min(self.size_max, max(0, size - self.size_free) * self.per_extra_member),
        }
        return parts | {"total": sum(parts.values())}
