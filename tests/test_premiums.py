"""The premiums law (景品表示法) check when the rules load: the caps themselves at and around each boundary, and
the loader's findings on the rules' own rewards, warned (kept and logged) or refused (strict), naming the
setting and its line."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from rewards import premiums
from rewards.rules import RulesError, _line_index, load_rules
from tests.support.rules_helpers import variant

# The shipped rules with a ¥10,000 minimum order for referrals: every referral reward is within its 総付 cap
# (¥2,000), so each test below moves one setting and sees only its own finding.
CLEAN = {"referral__minimum_order": "10000"}


@pytest.mark.parametrize(("transaction", "cap"), [
    (0, 200), (999, 200), (1000, 200), (1004, 200), (1005, 201), (1999, 399), (5000, 1000), (100_000, 20_000)])
def test_sohu_cap_is_a_fifth_of_the_order_and_never_under_200_yen(transaction: int, cap: int) -> None:
    assert premiums.sohu_cap(transaction) == cap
    assert premiums.sohu("x", "a premium", cap, transaction) is None  # at the cap: allowed
    over = premiums.sohu("x", "a premium", cap + 1, transaction)
    assert over is not None and f"¥{cap:,}" in over.message and over.setting == "x"


@pytest.mark.parametrize(("transaction", "cap"), [
    (0, 0), (1, 20), (100, 2000), (4999, 99_980), (5000, 100_000), (5001, 100_000), (50_000, 100_000)])
def test_kensho_prize_cap_is_twenty_times_the_order_up_to_100000_yen(transaction: int, cap: int) -> None:
    assert premiums.kensho_cap(transaction) == cap
    assert premiums.kensho("x", "a prize", cap, transaction) is None
    assert premiums.kensho("x", "a prize", cap + 1, transaction) is not None


@pytest.mark.parametrize(("expected_sales", "total", "over"), [
    (1_000_000, 20_000, False), (1_000_000, 20_001, True), (999_999, 19_999, False), (999_999, 20_000, True),
    (0, 10**9, False)])  # no expected sales given: the total is not checked
def test_kensho_total_is_at_most_2_percent_of_expected_sales(expected_sales: int, total: int, over: bool) -> None:
    finding = premiums.kensho("x", "a prize", 1000, 100, total_yen=total, expected_sales_yen=expected_sales)
    assert (finding is not None) == over
    if finding:
        assert "2%" in finding.message and "expected_sales_yen" in finding.message


def line_of(path: Path, setting: str) -> int:
    """The line a setting is on, as the loader indexes the file."""
    return _line_index(path.read_text(encoding="utf-8"))[setting]


# (settings changed from CLEAN, the setting named, whether it is over the cap)
CASES = [
    ({}, None, False),
    # the friend gets the referrer's share too when it is given (allow_gift): 300 + 500 against 20% of the order
    ({"referral__minimum_order": "4000"}, "referral.friend_points", False),  # ¥800 = 20% of ¥4,000
    ({"referral__minimum_order": "3999"}, "referral.friend_points", True),
    ({"referral__minimum_order": "0", "referral__allow_gift": "false", "referral__friend_points": "200",
      "referral__referrer_points": "200", "referral__milestones": None}, "referral.friend_points", False),
    ({"referral__minimum_order": "0", "referral__allow_gift": "false", "referral__friend_points": "201",
      "referral__referrer_points": "200", "referral__milestones": None}, "referral.friend_points", True),
    ({"referral__referrer_points": "1500"}, "referral.referrer_points", False),  # 1500 + 300 ≤ 2000 with the gift
    ({"referral__referrer_points": "1701"}, "referral.referrer_points", False),  # 1701 ≤ 2000: only the gift is over
    # the referrer's own reward is a thank-you for introducing a buyer, not a premium (CAA 景品Q&A Q35): never flagged
    ({"referral__referrer_points": "2001"}, "referral.referrer_points", False),
    # points at ¥2 each: the friend's 300 + 500 given are ¥1,600, within ¥2,000; 1,001 referrer points are not
    ({"points__point_value_yen": "2", "referral__referrer_points": "700"}, "referral.friend_points", False),
    ({"points__point_value_yen": "2", "referral__referrer_points": "701"}, "referral.friend_points", True),
    # the first-purchase bonus is paid on any first order (¥200 allowed) and the top tier doubles it
    ({"earn__first_purchase__points": "100"}, "earn.first_purchase.points", False),
    ({"earn__first_purchase__points": "101"}, "earn.first_purchase.points", True),
    # purchase points: 1 per ¥20 with the top tier's ×2 and the sakura campaign's ×2 is exactly 20%
    ({"earn__purchase__yen_per_point": "20"}, "earn.purchase.yen_per_point", False),
    ({"earn__purchase__yen_per_point": "19"}, "earn.purchase.yen_per_point", True),
]


def rules_with(tmp_path: Path, changes: dict[str, str | None], mode: str = "warn") -> Path:
    settings = {k: v for k, v in (CLEAN | changes).items() if v is not None} | {"legal__premiums": f'"{mode}"'}
    path = variant(tmp_path, "", **settings)
    if "referral__milestones" in changes:  # no milestones at all
        text = re.sub(r"\[\[referral\.milestones\]\][^\[]*", "", path.read_text(encoding="utf-8"))
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("changes", "setting", "over"), CASES)
def test_each_purchase_reward_at_and_around_its_cap_warns_or_is_refused_in_strict_mode(
        tmp_path: Path, changes: dict[str, str | None], setting: str | None, over: bool) -> None:
    path = rules_with(tmp_path, changes)
    rules = load_rules(path)
    named = [w for w in rules.warnings if setting and f"({setting})" in w]
    assert bool(named) == over, rules.warnings
    if not setting:
        assert rules.warnings == ()
        load_rules(rules_with(tmp_path, changes, "strict"))  # nothing over: strict loads too
        return
    if over:
        assert f"line {line_of(path, setting)} ({setting})" in named[0]  # the setting's own line, as RulesError says
        with pytest.raises(RulesError) as refused:
            load_rules(rules_with(tmp_path, changes, "strict"))
        assert f"({setting})" in str(refused.value) and "strict" in str(refused.value)
    elif not rules.warnings:
        load_rules(rules_with(tmp_path, changes, "strict"))


def test_the_referrers_side_is_never_a_premium(tmp_path: Path) -> None:
    """Milestones and the referrer's reward go to whoever introduced a buyer, and any member may refer: not given
    with a transaction (CAA 景品Q&A Q35), so however large they are not checked against the 総付景品 cap."""
    path = rules_with(tmp_path, {"referral__minimum_order": "9999", "referral__allow_gift": "false",
                                 "referral__referrer_points": "50000"})
    warnings = load_rules(path).warnings
    assert not [w for w in warnings if "referral.milestones" in w or "referral.referrer_points" in w], warnings


def test_off_checks_nothing_and_joining_is_not_a_purchase(tmp_path: Path) -> None:
    over = {"referral__minimum_order": "0"}
    assert load_rules(rules_with(tmp_path, over, "off")).warnings == ()
    on_join = load_rules(rules_with(tmp_path, over | {"referral__trigger": '"join"'}, "strict"))
    assert on_join.warnings == ()  # paid on joining, no transaction: not this check's premium
    with pytest.raises(RulesError, match=r"legal\.premiums"):
        load_rules(rules_with(tmp_path, {}, "sometimes"))
    with pytest.raises(RulesError, match=r"budget\.referral_monthly"):
        load_rules(variant(tmp_path, "", budget__referral_monthly_yen="-1"))


def test_check_rules_prints_the_findings_and_strict_refuses(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from bot.__main__ import main

    over = {"referral__minimum_order": "3999"}
    assert main(["check-rules", str(rules_with(tmp_path, over))]) == 0
    out = capsys.readouterr().out
    assert "warning:" in out and "(referral.friend_points)" in out and "rules ok" in out
    assert main(["check-rules", str(rules_with(tmp_path, over, "strict"))]) == 2
    assert "(referral.friend_points)" in capsys.readouterr().err


ARMS = """
[[experiments]]
id = "bigger"
starts = 2027-01-10T00:00:00+09:00

[[experiments.arms]]
id = "control"
share = 50

[[experiments.arms]]
id = "generous"
share = 50
referrer_points = {points}
"""


@pytest.mark.parametrize(("points", "over"), [(1500, False), (1701, True)])
def test_an_experiments_arm_is_checked_as_the_referral_is(tmp_path: Path, points: int, over: bool) -> None:
    # ¥10,000 minimum order: ¥2,000 allowed; the friend may be given the referrer's share (300 + points)
    path = variant(tmp_path, ARMS.format(points=points), **CLEAN)
    warnings = [w for w in load_rules(path).warnings if "experiments[0].arms[1]" in w]
    assert bool(warnings) == over, warnings
    if over:
        # named as the loader names an arm's settings (its line: the experiment's, as for the loader's own errors)
        assert f"line {line_of(path, 'experiments[0]')} (experiments[0].arms[1].referrer_points)" in warnings[0]
