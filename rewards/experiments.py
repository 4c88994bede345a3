"""Offer experiments ([[experiments]] in the rules): which arm a referrer is in, what their referrals pay, the
counts per arm, the report, and the ending that moves everyone to the winner.

- **Assignment.** A referrer's arm comes from a stable hash of (experiment id, user id) over the arms' shares,
  so every process and every restart computes the same one without asking anybody. It is also recorded at
  the referrer's first exposure (the first time the offer is stated or paid for them while the experiment
  runs), and the record wins from then on: when the shop changes the shares mid-experiment, people already
  exposed keep their arm and only new referrers follow the new shares (the hash alone would move some).
- **A referral keeps its arm.** The friend's referral record keeps the experiment and arm it was attributed
  under (attribute.lua writes them with the record), and pays those amounts whenever it completes: what the
  friend and the referrer were shown is what is paid, even after the experiment ends.
- **The ending** (end()) is kept in Redis once, audited: from then on, while the rules still list the
  experiment and before its `ends`, every referrer gets the winner's terms and nothing more is counted.
  Referrals attributed before keep their arm (above).
- **Counts** go to a small counters hash per experiment (experiment_count.lua, in one step with the people's
  hash): each friend's attribution and completion once, whatever retries; the referrers' per-person totals,
  kept in the people's hash, feed the report's delta method.

The arm decides amounts only: holds (budget, review, rings) stay where they are decided.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rewards import engine, experiment_stats, keys
from rewards.errors import ProgramError
from rewards.part import Part
from rewards.rules import Arm, Experiment, FriendCoupon, Rules

METRICS = ("referrers", "invites_shown", "shares", "attributions", "completions", "converters", "points",
           "coupon_yen", "cost", "sxx", "skk", "skx")


@dataclass(frozen=True)
class Terms:
    """What a referral pays each side (base amounts: the engine adds campaigns) and the friend's coupon, with
    the experiment and arm that decided them (None: [referral] as written)."""

    referrer_points: int
    friend_points: int
    friend_coupon: FriendCoupon | None
    experiment: str | None = None
    arm: str | None = None
    counted: bool = False  # the experiment runs and has not ended: what happens under these terms is counted


def base_terms(rules: Rules) -> Terms:
    return Terms(rules.referrer_points, rules.friend_points, rules.friend_coupon)


def arm_terms(rules: Rules, exp_id: str | None, arm_id: str | None, counted: bool = False) -> Terms:
    """The terms of an arm; [referral]'s when the rules no longer list the experiment or the arm."""
    experiment = next((e for e in rules.experiments if e.id == exp_id), None)
    arm = experiment.arm(arm_id) if experiment and arm_id else None
    if experiment is None or arm is None:
        return base_terms(rules)
    return Terms(referrer_points=rules.referrer_points if arm.referrer_points is None else arm.referrer_points,
                 friend_points=rules.friend_points if arm.friend_points is None else arm.friend_points,
                 friend_coupon=arm.friend_coupon if arm.coupon_set else rules.friend_coupon,
                 experiment=experiment.id, arm=arm.id, counted=counted)


def hash_bucket(exp_id: str, uid: str) -> int:
    """0-99, the same in every process: the first 8 bytes of sha256("experiment:user")."""
    return int.from_bytes(hashlib.sha256(f"{exp_id}:{uid}".encode()).digest()[:8], "big") % 100


def hashed_arm(experiment: Experiment, uid: str) -> Arm:
    """The arm the hash puts `uid` in: the arms' shares laid end to end over 0-99, in the file's order."""
    bucket, edge = hash_bucket(experiment.id, uid), 0
    for arm in experiment.arms:
        edge += arm.share
        if bucket < edge:
            return arm
    return experiment.arms[-1]  # unreachable: the shares add up to 100 (checked at load)


def in_effect(rules: Rules, at: datetime) -> Experiment | None:
    """The experiment running at `at` (at most one: the loader refuses overlaps)."""
    return next((e for e in rules.experiments if e.runs_at(at)), None)


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class Experiments(Part):
    def __init__(self, redis: Any, rules: Rules, now_ms: Callable[[], int], *,
                 audit: Callable[..., Any] | None = None):
        super().__init__(redis, rules, now_ms)
        self._count = self.script("experiment_count")
        self._audit = audit  # Members.audit, given by Program (the staff action's record)

    @staticmethod
    def _keys(exp_id: str) -> list[str]:
        """experiment_count.lua's keys: the people, the counters (one hash tag)."""
        return [keys.experiment(exp_id), keys.experiment_counts(exp_id)]

    def _running(self) -> Experiment | None:
        return in_effect(self.rules, engine.shop_time(self.rules, self.now_ms()))

    async def terms_for(self, referrer: str) -> Terms:
        """The terms a referral by `referrer` gets now: [referral]'s outside an experiment, the winner's after
        it ended, else the referrer's arm (recorded now at their first exposure)."""
        experiment = self._running()
        if experiment is None:
            return base_terms(self.rules)
        ending, recorded = await self.redis.hmget(keys.experiment(experiment.id), ["end", f"u:{referrer}"])
        if ending is not None:
            return arm_terms(self.rules, experiment.id, json.loads(ending)["winner"])
        arm_id = _text(recorded)
        if arm_id is None or experiment.arm(arm_id) is None:  # first exposure (or their arm left the rules)
            arm_id = _text(await self._count(keys=self._keys(experiment.id), args=[json.dumps(
                {"what": "expose", "arm": hashed_arm(experiment, referrer).id, "user": referrer,
                 "replace": arm_id is not None})]))
        return arm_terms(self.rules, experiment.id, arm_id, counted=True)

    async def referral_terms(self, friend: str) -> Terms:
        """The terms the friend's referral was attributed under (kept in its record)."""
        if not self.rules.experiments:
            return base_terms(self.rules)
        exp_id, arm_id = await self.redis.hmget(keys.referral(friend), ["exp", "arm"])
        return arm_terms(self.rules, _text(exp_id), _text(arm_id))

    async def count(self, referrer: str, metric: str) -> None:
        """invites_shown or shares, under the referrer's arm while an experiment runs."""
        terms = await self.terms_for(referrer)
        if terms.counted:
            await self._count(keys=self._keys(str(terms.experiment)),
                              args=[json.dumps({"what": "count", "arm": terms.arm, "metric": metric})])

    async def attributed(self, terms: Terms, referrer: str, friend: str) -> None:
        """A referral recorded under `terms`: counted once per friend; a yen-off coupon's face value is the
        referrer's cost (an upper bound: an unused coupon costs nothing; a percent-off one is not priced)."""
        if not terms.counted:
            return
        coupon = terms.friend_coupon
        await self._count(keys=self._keys(str(terms.experiment)), args=[json.dumps(
            {"what": "attributed", "arm": terms.arm, "user": referrer, "friend": friend,
             "yen": coupon.yen_off if coupon else 0})])

    async def completed(self, referrer: str, friend: str, terms: Terms, at_ms: int) -> None:
        """A referral under `terms` completed at `at_ms`, both sides paid (the engine's amounts then, campaigns
        included): counted once, when its attribution was counted."""
        if terms.experiment is None or terms.arm is None:
            return
        points = sum(engine.award(self.rules, rule, base, at_ms, "", "").amount for rule, base in
                     (("referral.referrer", terms.referrer_points), ("referral.friend", terms.friend_points)))
        await self._count(keys=self._keys(terms.experiment), args=[json.dumps(
            {"what": "completed", "arm": terms.arm, "user": referrer, "friend": friend, "points": points,
             "yen": points * self.rules.point_value_yen})])

    def experiment(self, exp_id: str) -> Experiment:
        found = next((e for e in self.rules.experiments if e.id == exp_id), None)
        if found is None:
            raise ProgramError("UNKNOWN_EXPERIMENT", f"the rules list no experiment {exp_id!r}")
        return found

    async def end(self, exp_id: str, winner: str, by: str) -> tuple[bool, dict[str, Any]]:
        """End the experiment with `winner`: everyone gets its terms from now on. (changed now, the ending).
        Asked again with the same winner it changes nothing; with another, ALREADY_ENDED. Audited once.

        Raises ProgramError UNKNOWN_EXPERIMENT, UNKNOWN_ARM, NOT_STARTED or ALREADY_ENDED, nothing changed."""
        experiment = self.experiment(exp_id)
        if experiment.arm(winner) is None:
            raise ProgramError("UNKNOWN_ARM", f"{exp_id!r} has no arm {winner!r} "
                                              f"(its arms: {', '.join(a.id for a in experiment.arms)})")
        if engine.shop_time(self.rules, self.now_ms()) < experiment.starts:
            raise ProgramError("NOT_STARTED", f"{exp_id!r} has not started: edit the rules instead")
        ending = {"winner": winner, "at": self.now_ms(), "by": by}
        new = await self.redis.hsetnx(keys.experiment(exp_id), "end", json.dumps(ending))
        if not new:
            ending = json.loads(await self.redis.hget(keys.experiment(exp_id), "end"))
            if ending["winner"] != winner:
                raise ProgramError("ALREADY_ENDED", f"{exp_id!r} ended already, won by {ending['winner']!r}")
        if self._audit is not None:  # once, also when a retry finds the ending written but not yet audited
            await self._audit(ending["by"], "end_experiment", "", op=f"experiment_end:{exp_id}",
                              experiment=exp_id, winner=winner)
        return bool(new), ending

    async def ending(self, exp_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(keys.experiment(exp_id), "end")
        return json.loads(raw) if raw else None

    async def arms_of(self, uid: str) -> dict[str, str]:
        """experiment id -> the arm recorded for `uid` (a member's data on request)."""
        out = {}
        for experiment in self.rules.experiments:
            arm = await self.redis.hget(keys.experiment(experiment.id), f"u:{uid}")
            if arm is not None:
                out[experiment.id] = arm.decode()
        return out

    async def forget(self, uid: str) -> None:
        """Erase what the experiments keep under `uid` (their arm, their totals, their friend marks); the arms'
        counters stay (they name nobody)."""
        for experiment in self.rules.experiments:
            await self.redis.hdel(keys.experiment(experiment.id), f"u:{uid}", f"x:{uid}", f"k:{uid}", f"f:{uid}")

    async def report(self) -> list[dict[str, Any]]:
        """Every experiment the rules list, newest start first, each arm with its figures (report())."""
        out = []
        for experiment in sorted(self.rules.experiments, key=lambda e: e.starts, reverse=True):
            raw = await self.redis.hgetall(keys.experiment_counts(experiment.id))
            counters = {k.decode(): v.decode() for k, v in raw.items()}
            out.append(report(self.rules, experiment, counters, await self.ending(experiment.id), self.now_ms()))
        return out


def _status(rules: Rules, experiment: Experiment, ending: dict | None, now_ms: int) -> str:
    at = engine.shop_time(rules, now_ms)
    if at < experiment.starts:
        return "scheduled"
    if experiment.ends is not None and at >= experiment.ends:
        return "over"
    return "ended" if ending else "running"


def _interval(value: tuple[float, float, float] | None, digits: int) -> dict[str, float] | None:
    if value is None:
        return None
    return {"value": round(value[0], digits), "low": round(value[1], digits), "high": round(value[2], digits)}


def _rate(successes: int, trials: int) -> dict[str, float] | None:
    bounds = experiment_stats.wilson(successes, trials)
    return None if bounds is None else _interval((successes / trials, *bounds), 4)


def report(rules: Rules, experiment: Experiment, counters: dict[str, str], ending: dict[str, Any] | None,
           now_ms: int) -> dict[str, Any]:
    """One experiment's report from its counters (`<arm>:<metric>`) and its ending (None: not ended). Pure.

    Per arm: referrers exposed, invites shown, shares, attributions, completions (friends acquired); the
    completion rate (completions ÷ attributions) and the converting referrers (÷ referrers) with Wilson
    intervals; the K-factor (friends per referrer) with the exact Poisson interval; the cost (points paid to
    both sides in yen, plus yen-off coupons at face value) and the cost per friend with the delta method's
    interval; against the first arm, a two-proportion z-test of the completion rate."""
    comparisons = max(1, len(experiment.arms) - 1)
    alpha = experiment_stats.ALPHA / comparisons
    arms: list[dict[str, Any]] = []
    first: dict[str, int] = {}
    for arm in experiment.arms:
        got = {m: float(counters.get(f"{arm.id}:{m}", 0)) for m in METRICS}
        n, attributions, completions = int(got["referrers"]), int(got["attributions"]), int(got["completions"])
        terms = arm_terms(rules, experiment.id, arm.id)
        cost_yen = rules.yen(int(got["points"])) + int(got["coupon_yen"])
        per_friend = experiment_stats.ratio_delta(n, got["cost"], completions, got["skk"], got["skx"], got["sxx"])
        row: dict[str, Any] = {
            "id": arm.id, "share": arm.share,
            "offer": {"referrer_points": terms.referrer_points, "friend_points": terms.friend_points,
                      "friend_coupon": (terms.friend_coupon.name.get("ja") if terms.friend_coupon else None)},
            "referrers": n, "invites_shown": int(got["invites_shown"]), "shares": int(got["shares"]),
            "attributions": attributions, "completions": completions,
            "completion_rate": _rate(completions, attributions),
            "converting_referrers": _rate(int(got["converters"]), n),
            "k_factor": _interval(experiment_stats.k_factor(completions, n), 4),
            "points": int(got["points"]), "cost_yen": cost_yen,
            "cost_per_friend_yen": _interval(per_friend, 1),
            "vs_first": None,
        }
        if not first:
            first = {"x": completions, "n": attributions}
        else:
            test = experiment_stats.two_proportions(first["x"], first["n"], completions, attributions)
            row["vs_first"] = None if test is None else {
                "z": round(test[0], 3), "p": round(test[1], 4), "significant": test[1] < alpha}
        arms.append(row)
    significant = any(a["vs_first"] and a["vs_first"]["significant"] for a in arms)
    return {
        "id": experiment.id, "name": experiment.name,
        "starts": experiment.starts.isoformat(), "ends": experiment.ends.isoformat() if experiment.ends else None,
        "status": _status(rules, experiment, ending, now_ms), "ended": ending,
        "arms": arms, "significant": significant, "alpha": round(alpha, 4),
        "methods": {"rates": "Wilson score interval, 95%",
                    "k_factor": "exact Poisson (Garwood) interval of the friends acquired, ÷ referrers exposed, 95%",
                    "cost_per_friend_yen": "delta method, ratio of means over referrers, 95%",
                    "significance": f"two-proportion z-test of the completion rate against {experiment.arms[0].id!r}, "
                                    f"α = 0.05 ÷ {comparisons} comparison(s)"},
    }
