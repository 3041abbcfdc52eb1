"""Which lead we mean: a CRM record, and one routing decision of it (its epoch)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LeadRef:
    """A lead in one CRM: ``LeadRef("salesforce", "Lead", "00Q5e00000AbCdE")``."""

    crm: str
    object: str
    lead_id: str

    def __str__(self) -> str:
        return f"{self.crm}:{self.object}:{self.lead_id}"

    def at(self, epoch: int) -> DecisionKey:
        """The decision key for this lead at routing epoch ``epoch``."""
        return DecisionKey(self.crm, self.object, self.lead_id, epoch)


@dataclass(frozen=True, slots=True)
class DecisionKey:
    """What a decision is idempotent on: (crm, object, lead id, routing epoch)."""

    crm: str
    object: str
    lead_id: str
    epoch: int = 0

    @property
    def lead(self) -> LeadRef:
        return LeadRef(self.crm, self.object, self.lead_id)

    def __str__(self) -> str:
        return f"{self.crm}:{self.object}:{self.lead_id}#{self.epoch}"
