"""The SLA sweep's in-memory CRM keeps the parts of the connector contract the sweep relies on.

``tests/sla/conftest.py``'s ``FakeCrm`` stands in for a Salesforce connector in the sweep
tests, which call ``read_acks``, ``fetch``, ``write_owners`` and ``attach_reasons``; those are
held here to the same read and write contract as the real connectors, so a sweep test cannot
pass on behaviour no CRM has.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

import pytest

from tests.sla.conftest import FakeCrm

from .contract import Crm, ReadContract, WriteContract

SARAH, TOM = "005SARAH", "005TOM"


class FakeCrmHarness(Crm):
    """Acts in the double as the sandbox harnesses act in the sandbox: through its records."""

    name: ClassVar[str] = "salesforce"
    unknown_id: ClassVar[str] = "00Q5e0000009zzzEAA"
    bogus_owner: ClassVar[str] = "0055e000009BoGuSAAA"
    owner_field: ClassVar[str] = "OwnerId"
    reason_field: ClassVar[str] = "Routing_Reason__c"

    def __init__(self, fake: FakeCrm) -> None:
        self.connector = fake  # type: ignore[assignment]  # the double speaks the part of the interface it keeps
        self.fake = fake

    def generate(self, count: int) -> list[str]:
        start = len(self.fake.records)
        ids = [f"00QFAKE{n:011d}" for n in range(start, start + count)]
        for n, record_id in enumerate(ids, start):
            self.fake.add(record_id, "", Email=f"lead{n}@company{n}.com", Country="Germany",
                          NumberOfEmployees=100 + n, Score__c=50, LeadSource="Web")
        return ids

    def record(self, record_id: str) -> dict[str, Any]:
        return dict(self.fake.records[record_id])

    def all_owners(self) -> dict[str, str | None]:
        return {i: r.get("OwnerId") for i, r in self.fake.records.items()}

    def owners(self) -> tuple[str, str]:
        return SARAH, TOM

    def acknowledge(self, record_id: str) -> None:
        self.fake.touch(record_id, self.fake.clock + timedelta(minutes=1), Status="Working - Contacted")

    def touch(self, record_id: str) -> None:
        self.fake.touch(record_id, self.fake.clock + timedelta(minutes=1), Title="Edited")

    def delete(self, record_id: str) -> None:
        del self.fake.records[record_id]

    def writes(self, status: str | None = None) -> int:
        """Every write call the double answers is answered in full (``200``): failures are per record."""
        made = sum(1 for call, _ in self.fake.calls if call in ("write_owners", "attach_reasons"))
        return made if status in (None, "200") else 0


class TestSlaDoubleKeepsTheReadAndWriteContract(ReadContract, WriteContract):
    @pytest.fixture
    def crm(self) -> FakeCrmHarness:
        return FakeCrmHarness(FakeCrm([SARAH, TOM]))
