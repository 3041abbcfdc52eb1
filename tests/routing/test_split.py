"""A/B arms on a rule: a stable hash of the lead's key, salted with the rule name, cut by the arms' shares."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from worker.config import parse_config
from worker.config.schema import ConfigError
from worker.domain.leads import LeadRef
from worker.routing.engine import FALLBACK, Router
from worker.routing.split import arm_point, choose_arm, split_key
from worker.routing.state import InMemoryState
from worker.steps.ledger import decision_event

N = 100_000
AT = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


@dataclass(frozen=True)
class A:
    name: str
    share: float


def config(split: str, extra: str = "") -> str:
    return textwrap.dedent(
        """\
        version: 1
        reps:
          - {id: ana}
          - {id: lee}
          - {id: tom}
          - {id: away, active: false}
        pools:
          vertical: {members: [ana, lee]}
          general: {members: [tom]}
          gone: {members: [away]}
        queues: {triage: {salesforce: "00G1"}}
        rules:
          - name: inbound
            when: {lead_source: Web}
        """
    ) + textwrap.indent(split, "    ") + extra + "fallback: {queue: triage}\n"


SPLIT = textwrap.dedent(
    """\
    split:
      key: domain
      arms:
        - {name: control, share: 50, assign: {pool: general}}
        - {name: vertical, share: 50, assign: {pool: vertical}}
    """
)


def test_a_lead_lands_in_the_same_arm_in_every_process() -> None:
    keys = [f"company{i}.com" for i in range(200)]
    here = [choose_arm("inbound", [A("a", 50), A("b", 50)], k) for k in keys]
    code = ("from dataclasses import dataclass\nfrom worker.routing.split import choose_arm\n"
            "@dataclass\nclass A:\n    name: str\n    share: float\n"
            "print(''.join(str(choose_arm('inbound', [A('a', 50), A('b', 50)], f'company{i}.com')) for i in range(200)))")
    for seed in ("1", "2"):  # Python's own hash() would differ between these
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        assert out.stdout.strip() == "".join(map(str, here))


def test_the_point_is_blake2b_of_rule_and_key() -> None:
    import hashlib  # the definition, restated

    digest = hashlib.blake2b(b"inbound\x00acme.com", digest_size=8).digest()
    assert arm_point("inbound", "acme.com") == int.from_bytes(digest, "big") / 2**64 * 100


def test_arms_match_their_shares_within_binomial_tolerance() -> None:
    arms = [A("a", 50), A("b", 30), A("c", 15), A("d", 5)]
    counts = Counter(choose_arm("inbound", arms, f"lead-{i}") for i in range(N))
    for index, arm in enumerate(arms):
        p = arm.share / 100
        sigma = (N * p * (1 - p)) ** 0.5
        assert abs(counts[index] - N * p) <= 4.5 * sigma, (arm, counts[index])


def test_two_rules_split_independently() -> None:
    arms = [A("a", 50), A("b", 50)]
    table = Counter((choose_arm("rule-one", arms, f"lead-{i}"), choose_arm("rule-two", arms, f"lead-{i}"))
                    for i in range(N))
    # chi-square test of independence on the 2x2 table: 10.83 is the 0.1% critical value at 1 degree of freedom
    rows = {r: table[(r, 0)] + table[(r, 1)] for r in (0, 1)}
    cols = {c: table[(0, c)] + table[(1, c)] for c in (0, 1)}
    chi2 = sum((table[(r, c)] - rows[r] * cols[c] / N) ** 2 / (rows[r] * cols[c] / N) for r in (0, 1) for c in (0, 1))
    assert chi2 < 10.83
    assert 0.49 < (table[(0, 0)] + table[(1, 1)]) / N < 0.51  # agreeing as often as chance


def test_a_missing_domain_splits_by_lead_id() -> None:
    assert split_key("domain", {"domain": "Acme.com", "id": "1"}) == ("acme.com", "domain")
    assert split_key("domain", {"id": "7"}) == ("7", "lead_id")
    assert split_key("lead_id", {"id": "7", "domain": "acme.com"}) == ("7", "lead_id")


def test_every_lead_of_an_account_gets_the_same_arm_and_the_decision_names_it() -> None:
    router = Router(parse_config(config(SPLIT)), InMemoryState())
    arms = {}
    for domain in ("acme.com", "globex.com", "initech.com", "hooli.com", "umbrella.com", "stark.com"):
        seen = {router.route({"id": f"{domain}-{i}", "email": f"x{i}@{domain}", "lead_source": "Web"}, at=AT).arm
                for i in range(5)}
        assert len(seen) == 1
        arms[domain] = seen.pop()
    assert set(arms.values()) == {"control", "vertical"}
    decision = router.route({"id": "z", "email": "z@acme.com", "lead_source": "Web"}, at=AT)
    assert decision.experiment == "inbound"
    expected_pool = "general" if arms["acme.com"] == "control" else "vertical"
    assert decision.target == f"pool {expected_pool}"
    assert f"[arm {arms['acme.com']} 50%, by domain]" in decision.reason
    assert decision.to_dict()["arm"] == arms["acme.com"]


def test_a_lead_in_an_arm_whose_target_cannot_take_it_keeps_its_arm() -> None:
    split = SPLIT.replace("{pool: vertical}", "{pool: gone}").replace("{pool: general}", "{pool: gone}")
    decision = Router(parse_config(config(split)), InMemoryState()).route(
        {"id": "1", "email": "a@acme.com", "lead_source": "Web"}, at=AT)
    assert decision.rule == FALLBACK and decision.arm in {"control", "vertical"} and decision.experiment == "inbound"


def test_leads_without_a_split_carry_no_arm() -> None:
    plain = "assign: {pool: general}\n"
    decision = Router(parse_config(config(plain)), InMemoryState()).route({"id": "1", "lead_source": "Web"}, at=AT)
    assert decision.arm is None and "arm" not in decision.to_dict()


def test_the_ledger_event_carries_the_arm() -> None:
    router = Router(parse_config(config(SPLIT)), InMemoryState())
    decision = router.route({"id": "1", "email": "a@acme.com", "lead_source": "Web"}, at=AT).to_dict()
    event = decision_event(LeadRef("salesforce", "Lead", "1"), 0, decision, AT)
    assert event.arm == decision["arm"] and event.data["experiment"] == "inbound"


@pytest.mark.parametrize(("split", "line", "message"), [
    (SPLIT.replace("share: 50, assign: {pool: vertical}", "share: 40, assign: {pool: vertical}"), 15,
     "rules[0].split: arm shares add up to 90, not 100 (control 50, vertical 40)"),
    (SPLIT.replace("{pool: vertical}", "{pool: verticl}"), 19,
     "rules[0].split.arms[1].assign.pool: unknown pool 'verticl' (did you mean 'vertical'?)"),
    (SPLIT.replace("name: vertical", "name: control"), 19,
     "rules[0].split.arms[1].name: arm 'control' is named twice"),
    ("assign: {pool: general}\n" + SPLIT, 13, "rules[0]: give either assign or split"),
])
def test_check_reports_split_errors_with_file_and_line(split: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(config(split), "routing.yaml")
    text = str(exc.value)
    assert f"routing.yaml:{line}: {message}" in text, text
