"""The demo's cash act (issue 24): multi-purpose cash from a household's cash need to a
reconciled payment, watched step by step.

Six displaced households in one oblast (chosen by the seed) are registered with a cash need (five give a
bank account). Cash decides and explains their entitlements; a programme officer opens a
cycle whose budget does not pay them all; the officer's own approval is refused (four
eyes) and an approver's accepted; registration writes the provider's file (shown masked:
the payees' names and IBANs exist only there) and withholds the household without an
account; the provider's report (one payment failed, one row naming an unknown payment) is
reconciled; a second cycle for the same months holds the households already paid.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
from aidmesh_runtime.auth import (
    CASH_APPROVE,
    CASH_READ,
    CASH_WRITE,
    REGISTRATION_PAYMENT_FILES,
    REGISTRATION_WRITE,
)
from rich.console import Console
from rich.table import Table

from . import tokens
from .demo_data import OBLASTS, DemoHousehold, Need, generate_households

HOUSEHOLDS = 6
WAIT_S = 60.0
LOGS = "var/logs"


@dataclass(frozen=True)
class CashTokens:
    """The act's people: a registrar, a programme officer, an approver (another person),
    and the provider's liaison who downloads the file."""

    registrar: dict[str, str]
    officer: dict[str, str]
    approver: dict[str, str]
    liaison: dict[str, str]

    @classmethod
    def issue(cls, key_file: Path | None) -> CashTokens:
        def headers(sub: str, *scopes: str) -> dict[str, str]:
            return tokens.bearer(*scopes, org="IOM", sub=sub, key_file=key_file)

        return cls(
            registrar=headers("user:demo-registrar-iom", REGISTRATION_WRITE),
            officer=headers("user:demo-cash-officer", CASH_READ, CASH_WRITE, CASH_APPROVE),
            approver=headers("user:demo-cash-approver", CASH_READ, CASH_APPROVE),
            liaison=headers("user:demo-provider-liaison", REGISTRATION_PAYMENT_FILES),
        )


class ActFailed(Exception):
    """A step did not answer as expected: the message says which and where to look."""


def demo_iban(seed: int, index: int) -> str:
    """A Ukrainian IBAN with valid check digits (ISO 13616), made up for the demo."""
    bban = f"305299{seed % 10**9:09d}{index:010d}"
    check = 98 - int(bban + "301000") % 97  # U = 30, A = 10, check digits 00
    return f"UA{check:02d}{bban}"


def masked(value: str, keep: int = 4) -> str:
    return "•" * max(len(value) - keep, 0) + value[-keep:]


class CashAct:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        registration_url: str,
        cash_url: str,
        people: CashTokens,
        console: Console,
        seed: int,
        today: date,
    ) -> None:
        self.http = http
        self.registration_url = registration_url
        self.cash_url = cash_url
        self.people = people
        self.say = console.print
        self.console = console
        self.seed = seed
        self.today = today
        #: An oblast per seed: an earlier run's households (waiting, or withheld) stay in
        #: the oblast they were registered in, and a cycle there would pay them first.
        oblast = OBLASTS[seed % len(OBLASTS)]
        self.oblast, self.oblast_name = oblast.pcode, oblast.name_en
        #: Next month and the one after: the months the act's cycles pay.
        month = today.month % 12 + 1
        self.first_month = f"{today.year + (today.month == 12)}-{month:02d}"

    async def run(self) -> list[str]:
        """Play the act; the problems found (empty when every step answered as expected)."""
        self.say()
        self.say("[bold]Multi-purpose cash[/] (issue 24): from a cash need to a reconciled payment")
        try:
            households = await self._register()
            await self._entitlements(households)
            cycle_id = await self._open_cycle()
            await self._approve(cycle_id)
            rows = await self._provider_file(cycle_id)
            await self._reconcile(cycle_id, rows)
            await self._second_cycle(households)
        except ActFailed as exc:
            return [f"cash act: {exc}"]
        except httpx.TransportError as exc:
            return [f"cash act: a service did not answer ({type(exc).__name__}); see {LOGS}/"]
        return []

    # -- the steps --

    async def _register(self) -> dict[str, DemoHousehold]:
        generated = generate_households(HOUSEHOLDS, seed=self.seed + 24, today=self.today)
        registered = {}
        for index, household in enumerate(generated):
            household = replace(
                household,
                adm1_pcode=self.oblast,
                channel="field_office",
                partner_org=None,
                displacement_status="idp",
                consents=household.consents | {"registration", "data_sharing"},
                needs=(Need("cash", 3 + index % 3, {}),),
            )
            body = household.registration_body()
            body["needs"] = [{"sector": "cash", "severity": 3 + index % 3}]
            body["data_sharing_with"] = ["privatbank"]  # the cycle's provider may have them
            if index < HOUSEHOLDS - 1:  # the last gives no bank account
                body["iban"] = demo_iban(self.seed, index)
            answer = await self._expect(
                201,
                self.http.post(
                    f"{self.registration_url}/households",
                    json=body,
                    headers=self.people.registrar,
                ),
                "registration: registering a household with a cash need",
            )
            registered[answer["household_id"]] = household
        self.say(
            f"  registered {len(registered)} displaced households in {self.oblast_name} oblast "
            f"({self.oblast}) with a cash need"
        )
        return registered

    async def _entitlements(self, households: dict[str, DemoHousehold]) -> None:
        table = Table(title="Entitlements decided by cash (one month)", title_justify="left")
        for column in ("household", "members", "paid for", "UAH / month", "priority"):
            table.add_column(column)
        for household_id, household in households.items():
            found = await self._eventually(
                lambda h=household_id: self.http.get(
                    f"{self.cash_url}/households/{h}/entitlement", headers=self.people.officer
                ),
                f"cash: no entitlement for household {household_id[:8]} (is the cash "
                f"service running? {LOGS}/cash.log)",
            )
            amount = found["explanation"]["amount"]
            table.add_row(
                household_id[:8],
                str(household.size),
                str(amount["members_paid"]),
                found["monthly_amount_uah"],
                str(found["priority"]),
            )
        self.console.print(table)

    async def _open_cycle(self) -> str:
        lines = await self._cycle(months=2, budget="90000.00", what="opening a payment cycle")
        entitled = Decimal(lines["proposed"]["total_uah"])
        self.say(
            f"  the officer opens a cycle for {self.first_month} + 1 month, budget 90,000 UAH: "
            f"{lines['proposed']['households']} proposed ({entitled:,.2f} UAH), "
            f"{lines['waiting']['households']} waiting beyond the budget, "
            f"{lines['held']['households']} held"
        )
        return str(lines["cycle_id"])

    async def _approve(self, cycle_id: str) -> None:
        own = await self.http.post(
            f"{self.cash_url}/cycles/{cycle_id}/approval", headers=self.people.officer
        )
        if own.status_code != 403:
            raise ActFailed(f"the officer approving their own cycle got {own.status_code}")
        self.say(f"  the officer's own approval is refused: 403 {own.json()['detail']}")
        approved = await self._expect(
            200,
            self.http.post(
                f"{self.cash_url}/cycles/{cycle_id}/approval", headers=self.people.approver
            ),
            "cash: the approver's approval",
        )
        self.say(f"  an approver approves: {approved['payments']} payments instructed")

    async def _provider_file(self, cycle_id: str) -> list[dict[str, str]]:
        deadline = time.monotonic() + WAIT_S
        while True:
            response = await self.http.get(
                f"{self.registration_url}/payment-files/{cycle_id}", headers=self.people.liaison
            )
            if response.status_code == 200:
                break
            # 404 until registration heard of the cycle, 409 until every instruction arrived
            if response.status_code not in (404, 409) or time.monotonic() > deadline:
                raise ActFailed(
                    f"registration: the provider's file answered {response.status_code} "
                    f"{response.text[:200]} (see {LOGS}/registration.log)"
                )
            await asyncio.sleep(0.5)
        rows = list(csv.DictReader(io.StringIO(response.text)))
        table = Table(
            title="The provider's file, written by registration (masked here)",
            title_justify="left",
        )
        for column in ("payment", "payee", "IBAN", "UAH"):
            table.add_column(column)
        for row in rows:
            initials = " ".join(part[0] + "." for part in row["payee_name"].split())
            table.add_row(row["payment_id"][:8], initials, masked(row["iban"]), row["amount"])
        self.console.print(table)
        withheld = await self._expect(
            200,
            self.http.get(
                f"{self.registration_url}/payment-files/{cycle_id}/withheld",
                headers=self.people.liaison,
            ),
            "registration: the withheld payments",
        )
        for item in withheld["items"]:
            self.say(
                f"  withheld: payment {str(item['payment_id'])[:8]} of household "
                f"{str(item['household_id'])[:8]}: {item['reason']} (PayeeWithheld → cash)"
            )
        return rows

    async def _reconcile(self, cycle_id: str, rows: list[dict[str, str]]) -> None:
        if not rows:
            raise ActFailed("registration's file has no row to pay")
        *paid, failed = rows
        report = ["payment_id,status,amount,paid_at,reason"]
        report += [
            f"{r['payment_id']},paid,{r['amount']},{self.today}T12:00:00+02:00," for r in paid
        ]
        report.append(f"{failed['payment_id']},failed,0,,account_closed")
        report.append(f"{uuid4()},paid,7200.00,{self.today}T12:00:00+02:00,")
        control = sum((Decimal(r["amount"]) for r in paid), Decimal("7200.00"))
        result = await self._expect(
            201,
            self.http.post(
                f"{self.cash_url}/cycles/{cycle_id}/reports",
                headers=self.people.officer,
                json={"control_total_uah": str(control), "csv": "\n".join(report) + "\n"},
            ),
            "cash: reconciling the provider's report",
        )
        self.say(
            f"  the provider's report is reconciled: {result['paid']} paid "
            f"({result['paid_total_uah']} UAH, AssistanceDelivered each), "
            f"{result['failed']} failed (months free for the next cycle)"
        )
        for refused in result["refused"]:
            self.say(
                f"  refused row {refused['line']}: payment {refused['payment_id'][:8]}: "
                f"{refused['reason']} ({refused['message']})"
            )

    async def _second_cycle(self, households: dict[str, DemoHousehold]) -> None:
        second = await self._cycle(months=1, budget="150000.00", what="opening a second cycle")
        lines = await self._expect(
            200,
            self.http.get(
                f"{self.cash_url}/cycles/{second['cycle_id']}/lines",
                params={"status": "held", "limit": 1000},
                headers=self.people.officer,
            ),
            "cash: the second cycle's list",
        )
        again = [
            line
            for line in lines
            if line["household_id"] in households and line["reason"] == "already_assisted_in_period"
        ]
        if not again:
            raise ActFailed("the second cycle did not hold the households paid in the first")
        self.say(
            f"  a second cycle for {self.first_month}: {len(again)} of these households held, "
            "already_assisted_in_period (one MPCA per household per month)"
        )

    # -- HTTP --

    async def _cycle(self, *, months: int, budget: str, what: str) -> dict[str, Any]:
        """The officer opens a bank-transfer cycle in the act's oblast from next month."""
        body = {
            "adm1_pcodes": [self.oblast],
            "first_month": self.first_month,
            "months": months,
            "budget_uah": budget,
            "fsp": "privatbank",
            "modality": "bank_transfer",
        }
        return await self._expect(
            201,
            self.http.post(f"{self.cash_url}/cycles", headers=self.people.officer, json=body),
            f"cash: {what}",
        )

    async def _expect(
        self, status: int, call: Awaitable[httpx.Response], what: str
    ) -> dict[str, Any]:
        response = await call
        if response.status_code != status:
            raise ActFailed(f"{what}: HTTP {response.status_code} {response.text[:300]}")
        answer: dict[str, Any] = response.json()
        return answer

    async def _eventually(
        self, call: Callable[[], Awaitable[httpx.Response]], failure: str
    ) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_S
        while True:
            response = await call()
            if response.status_code == 200:
                answer: dict[str, Any] = response.json()
                return answer
            if time.monotonic() > deadline:
                raise ActFailed(failure)
            await asyncio.sleep(0.5)
