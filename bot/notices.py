"""Push notices on behalf of the domain, in one place: which notices each domain outcome calls for (the
`after_*` functions and `points_expiring`, at the end: callers pass the outcome and never pick notices
themselves), each kind switchable in the rules' [notifications], and quiet hours (shop time) that defer a
notice rather than drop it.

A deferred notice is kept durably in Redis: a zset of notice ids by due time and a hash of bodies, under one
hash tag so both change in one MULTI. The notice id *is* its X-Line-Retry-Key, fixed when the notice is made
(tied to the event or operation that caused it), so however often it is sent — a re-run event, a tick after a
crash between the push and the bookkeeping — LINE delivers it once and answers 409 to the rest.
A push that fails for a while (5xx, timeouts) is kept the same way and tried again by the clock.
"""
from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from bot import prompts
from bot.chat.staff import is_staff_user, staff_list
from bot.deliveries import events as webhook_events
from bot.infra import keys
from bot.line import offer_texts
from bot.line.client import LineRejected, retry_key
from bot.line.limits import TEXT_MAX, clip
from bot.line.offer_texts import Say
from bot.services import Services
from rewards import budget, budget_holds, engine
from rewards.catalog import ClaimResult, Stock
from rewards.orders import Purchase
from rewards.prompts import SEND
from rewards.referrals import Attribution
from rewards.review import Decision
from rewards.rules import FRIEND_COUPON_POOL, NOTICE_KINDS, PROMPT_KINDS, Notifications, Rules

log = logging.getLogger(__name__)

RETRY_LATER_MS = 60_000  # a push LINE would not take now is tried again after this
SEND_BATCH = 200  # deferred notices sent per clock tick at most
REMIND_BATCH = 200  # friends' reminders handled per clock tick at most (the rest wait for the next tick)


def quiet_until(rules_notifications: Notifications, local: datetime) -> datetime | None:
    """When the quiet hours around `local` (shop time) end, or None when it is not quiet."""
    n = rules_notifications
    if n.quiet_end is None or not n.quiet_at(local.hour * 60 + local.minute):
        return None
    end = local.replace(hour=n.quiet_end // 60, minute=n.quiet_end % 60, second=0, microsecond=0)
    return end if end > local else end + timedelta(days=1)


async def notify(services: Services, kind: str, to: str, text_key: str | Callable[[Say], str], key: str,
                 **values: Any) -> str:
    """Tell member `to` something, in their language: "off" (switched off), "blocked", "sent", "deferred"
    (quiet hours), "retrying" (LINE failing: kept for the clock) or "rejected" (LINE refused it for good).

    `text_key`: a locale text filled with `values`, or a function that writes the text with the member's
    language's lookup (a text made of parts, bot/line/offer_texts.py).
    `key` is the notice's retry key: the same cause must always give the same key."""
    def text(lang: str, t: Callable[..., str]) -> list[dict[str, Any]]:
        body = text_key(t) if callable(text_key) else t(text_key, **values)
        return [{"type": "text", "text": clip(body, TEXT_MAX)}]

    return await send(services, kind, to, key, text)


def _switched_on(rules: Rules, kind: str) -> bool:
    return kind in rules.notifications.enabled or kind in rules.prompts.enabled


async def send(services: Services, kind: str, to: str, key: str,
               messages: Callable[[str, Callable[..., str]], list[dict[str, Any]]]) -> str:
    """As notify, with the messages made by `messages(lang, t)` in the member's language (a card, buttons)."""
    if kind not in NOTICE_KINDS and kind not in PROMPT_KINDS:  # a programming error: fail loudly, also under -O
        raise ValueError(f"unknown notice kind {kind!r}")
    program = services.program
    rules = program.rules.notifications
    if not _switched_on(program.rules, kind):
        log.info("notice %s to %s not sent: switched off in the rules", kind, to)
        return "off"
    view = await program.member(to)
    if view is None or view.blocked:
        return "blocked"
    lang = services.texts.lang_for(view.language)
    made = messages(lang, lambda text_key, **values: services.texts.get(lang, text_key, **values))
    now_ms = int(program.clock() * 1000)
    if kind not in rules.ignore_quiet_hours:
        until = quiet_until(rules, engine.shop_time(program.rules, now_ms))
        if until is not None:
            await _keep(services, key, kind, to, made, int(until.timestamp() * 1000))
            log.info("notice %s to %s deferred to %s (quiet hours)", kind, to, until.isoformat())
            return "deferred"
    return await _push(services, key, kind, to, made, now_ms, kept=False)


async def _keep(services: Services, key: str, kind: str, to: str, messages: list[dict], due_ms: int) -> None:
    """Store a notice to send later; a notice already kept keeps its first due time and body."""
    body = json.dumps({"kind": kind, "to": to, "messages": messages}, ensure_ascii=False)
    async with services.redis.pipeline(transaction=True) as pipe:
        pipe.hsetnx(keys.NOTICES_BODY, key, body)
        pipe.zadd(keys.NOTICES_DUE, {key: due_ms}, nx=True)
        await pipe.execute()


async def _forget(services: Services, key: str) -> None:
    async with services.redis.pipeline(transaction=True) as pipe:
        pipe.zrem(keys.NOTICES_DUE, key)
        pipe.hdel(keys.NOTICES_BODY, key)
        await pipe.execute()


async def _push(services: Services, key: str, kind: str, to: str, messages: list[dict], now_ms: int,
                kept: bool) -> str:
    try:
        await services.line.push(to, messages, key)
    except LineRejected as exc:  # a 4xx (or the monthly quota): trying again cannot help
        log.warning("notice %s to %s refused by LINE: %s", kind, to, exc)
        if kept:
            await _forget(services, key)
        return "rejected"
    except RuntimeError as exc:  # still failing after the client's own retries: the clock tries again
        log.warning("notice %s to %s not sent yet (%s); kept for a later try", kind, to, exc)
        if kept:
            await services.redis.zadd(keys.NOTICES_DUE, {key: now_ms + RETRY_LATER_MS}, xx=True)
        else:
            await _keep(services, key, kind, to, messages, now_ms + RETRY_LATER_MS)
        return "retrying"
    if kept:
        await _forget(services, key)
    return "sent"


async def send_due(services: Services, now_ms: int | None = None) -> int:
    """The clock's part: send the kept notices whose time has come. Returns how many were sent."""
    now = now_ms if now_ms is not None else int(services.program.clock() * 1000)
    due = await services.redis.zrangebyscore(keys.NOTICES_DUE, "-inf", now, start=0, num=SEND_BATCH)
    sent = 0
    for raw_key in due:
        key = raw_key.decode()
        raw = await services.redis.hget(keys.NOTICES_BODY, key)
        if raw is None:  # forgotten meanwhile by another sender
            await services.redis.zrem(keys.NOTICES_DUE, key)
            continue
        notice = json.loads(raw)
        if not _switched_on(services.program.rules, notice["kind"]):
            await _forget(services, key)  # switched off since it was kept
            continue
        view = await services.program.member(notice["to"])
        if view is None or view.blocked:
            await _forget(services, key)
            continue
        if await _push(services, key, notice["kind"], notice["to"], notice["messages"], now, kept=True) == "sent":
            sent += 1
    return sent


async def pending(services: Services) -> int:
    """How many notices are kept for later (tests, metrics)."""
    return int(await services.redis.zcard(keys.NOTICES_DUE))


# ---- the notices the domain's outcomes call for: the one place that decides them -----------------
async def after_purchase(services: Services, purchase: Purchase, user_id: str, order_id: str) -> None:
    """An order recorded (or the same order again): the referral it completed, if any, then the buyer's tier."""
    if purchase.completed_referral_of:
        await _referral_completed(services, purchase.completed_referral_of, user_id)
        await _friend_paid(services, user_id)
    await _tier_check(services, user_id, f"order:{order_id}")
    await budget_alerts(services)
    await _ask(services, lambda: prompts.reward_in_reach(services, user_id),
               lambda: prompts.after_purchase(services, purchase, user_id, order_id))


async def after_custom_event(services: Services, user_id: str, name: str, event_id: str, value: int | None = None,
                             new: bool = True) -> None:
    """A custom event (a review, a share…) recorded, or the same one again (`new` False): the member's tier,
    then a prompt when the rules mark the event (its `value`, a review's stars, at least their minimum)."""
    await _tier_check(services, user_id, f"event:{name}:{event_id}")
    await _ask(services, lambda: prompts.reward_in_reach(services, user_id),
               lambda: prompts.after_custom_event(services, user_id, name, event_id, value, new))


async def after_review_decision(services: Services, decision: Decision) -> None:
    """Staff approved or voided a reviewed referral. Told when this call paid the referrer, even when the
    decision itself was taken before a crash; the friend, whenever it stands approved (keyed: told once)."""
    if decision.status == "voided":  # the shop's systems hear it (outbound webhooks); nobody is pushed
        await webhook_events.referral_voided(services, decision.referrer, decision.friend)
    if decision.paid_referrer:
        await _referral_completed(services, decision.paid_referrer, decision.friend)
    if decision.status == "completed":  # approved: the friend's own points came with it
        await _friend_paid(services, decision.friend)


async def budget_alerts(services: Services) -> int:
    """[budget]: tell every staff member, once a month per budget, when its spend passes 80% and when it is
    reached (rewards/budget.py marks each threshold told). Returns how many pushes were asked for."""
    sent = 0
    for kind in budget.KINDS:
        for percent, status in await services.program.budget.alerts_due(kind):
            configured, added = await staff_list(services)
            for uid in sorted({*configured, *added}):
                await notify(services, "budget_alert", uid, f"budget_alert_{kind}_{percent}",
                             retry_key("budget", kind, status.month, percent, uid), month=status.month,
                             spent=f"{status.spent_yen:,}", cap=f"{status.cap_yen:,}",
                             share=f"{(status.share or 0) * 100:.0f}", held=status.held)
                sent += 1
    return sent


async def release_budget_holds(services: Services) -> int:
    """The clock's part: held referral completions a new month's budget can pay are approved, then told as any
    approval is."""
    decisions = await budget_holds.release(services.program, budget_holds.CLOCK, new_month_only=True)
    for decision in decisions:
        await after_review_decision(services, decision)
    if decisions:
        await budget_alerts(services)
    return len(decisions)


async def after_attribution(services: Services, attribution: Attribution, friend: str, op: str) -> None:
    """A friend attributed to a code's owner by event `op`: the referrer hears a friend joined (keyed by the
    event, so handling it again after a crash tells nothing new); when joining completes the referral (the
    rules' trigger "join"), the milestone it reached, if any."""
    if not attribution.ok or attribution.referrer is None:
        return
    await webhook_events.referral_pending(services, attribution.referrer, friend)
    rules, view = services.program.rules, await services.program.member(attribution.referrer)
    offer = await services.program.offer_of_referral(friend, gift=bool(view and view.gift))
    if offer.on_join:  # joining paid the referrer already: what they were paid, whatever the campaign now
        offer = replace(offer, referrer_points=await _referral_points(services, attribution.referrer, friend,
                                                                      offer.referrer_points))

    # [budget]: a completion on joining held for the budget pays nobody yet; a promise while it is reached says so
    held = await services.program.budget.is_held(friend)
    paused = await services.program.budget.referral_paused()

    def told(say: Say) -> str:  # a promise for later (a first purchase) comes with the campaign's last day
        if held:
            return say("referral_ok_referrer_held", referrer_points=f"{offer.referrer_points:,}")
        campaign = None if offer.on_join else offer_texts.campaign_note(say, offer)
        return offer_texts.joined(offer_texts.offer_text(say, "referral_ok_referrer", offer, to_referrer=True),
                                  offer_texts.hold_note(say, offer), campaign, offer_texts.budget_note(say, paused))

    await notify(services, "friend_joined", attribution.referrer, told,
                 retry_key(op, "friend_joined", attribution.referrer))
    if rules.referral_trigger == "join" and not held:
        await webhook_events.referral_completed(services, attribution.referrer, friend, offer.referrer_points)
        await _milestone_check(services, attribution.referrer, friend)
        for paid in (attribution.referrer, friend):  # both were just paid: a reward may be in reach
            await _ask(services, functools.partial(prompts.reward_in_reach, services, paid))
    elif "friend_reminder" in rules.prompts.enabled:  # the friend's one reminder if no order comes in time
        due = services.program.now_ms() + rules.prompts.reminder_days * 86_400_000
        await services.program.prompts.schedule_reminder(friend, due)


async def after_refund(services: Services, order_id: str) -> None:
    """An order refunded (or the same refund again): when it voided the buyer's referral, the shop's systems hear
    it (outbound webhooks, keyed by the friend: once)."""
    friend = await services.program.orders.buyer(order_id)
    if friend is None:
        return
    status, referrer = await services.program.referrals.of_friend(friend)
    if status == "voided" and referrer:
        await webhook_events.referral_voided(services, referrer, friend)


async def after_join(services: Services, user_id: str) -> None:
    """A new friend's first follow: the shop's systems hear it (outbound webhooks); the welcome is the reply."""
    await webhook_events.member_joined(services, user_id)


async def after_link(services: Services, user_id: str, customer_id: str | None) -> None:
    """A member's LINE account linked to a shop customer: the shop's systems hear it (outbound webhooks)."""
    if customer_id:
        await webhook_events.member_linked(services, user_id, customer_id)


async def after_claim(services: Services, user_id: str, result: ClaimResult) -> None:
    """A reward claimed (or the same claim confirmed again): the shop's systems hear it once; the coupon card
    is the reply."""
    await webhook_events.reward_claimed(services, user_id, result)


async def after_expiry(services: Services, expired: list[tuple[str, int]], at_ms: int) -> None:
    """The clock expired members' points: the shop's systems hear it (outbound webhooks)."""
    for uid, points in expired:
        await webhook_events.points_expired(services, uid, points, at_ms)


async def points_expiring(services: Services, uid: str, points: int, when_ms: int) -> None:
    """The clock found `points` of `uid` expiring at `when_ms`: warn once (keyed by member and expiry), and
    mark them warned whether sent, kept for after quiet hours or a LINE outage, switched off or not sendable."""
    program = services.program
    view = await program.member(uid)
    if view is None or view.blocked or points <= 0:
        await program.mark_warned(uid, when_ms)
        return
    day = engine.shop_time(program.rules, when_ms).strftime("%Y/%m/%d")
    await notify(services, "points_expiring", uid, "expiry_warning", retry_key("expiry", uid, when_ms),
                 points=f"{points:,}", date=day)
    await program.mark_warned(uid, when_ms)


async def after_stock_added(services: Services, reward_id: str, added: int, stock: Stock) -> int:
    """Staff changed a reward's stock: when it is back, each member refused it as sold out is told once."""
    if added > 0 and stock.left:
        return await _stock_back(services, reward_id, f"stock:{stock.limit}")
    return 0


async def after_codes_added(services: Services, reward_id: str, added: int, pool: int) -> int:
    """New codes joined a pool reward's pool (its stock): back in stock, told as above. Codes for the friend
    welcome coupon go first to the friends whose coupon found the pool empty, each told once."""
    if reward_id == FRIEND_COUPON_POOL:
        return await _friend_coupons_owed(services)
    if added:
        return await _stock_back(services, reward_id, f"codes:{pool}:{added}")
    return 0


# ---- the notices they are made of --------------------------------------------------------------
async def _tier_check(services: Services, uid: str, op: str) -> str | None:
    """After an award: a tier up is told once (retry key tied to the tier and the operation that raised it)."""
    program = services.program
    risen = await program.tier_rise(uid)
    if risen is None:
        return None
    view = await program.member(uid)  # the label in the member's language, as notify picks it
    label = program.rules.tier_label(risen, services.texts.lang_for(view.language if view else None))
    await notify(services, "tier_up", uid, "notice_tier_up", retry_key("tier-up", uid, risen, op), tier=label)
    await program.mark_tier_told(uid, risen)  # told, or switched off: either way it is not news later
    return risen


async def _milestone_check(services: Services, referrer: str, friend: str) -> int | None:
    """After a referral completed: the milestone it reached, if any, told once (keyed by referrer and count)."""
    count = await services.program.milestone_reached(referrer, friend)
    if count is None:
        return None
    points = next((m.points for m in services.program.rules.milestones if m.count == count), 0)
    await notify(services, "milestone", referrer, "notice_milestone", retry_key("milestone", referrer, count),
                 count=count, points=f"{points:,}")
    return count


async def _referral_completed(services: Services, referrer: str, friend: str) -> None:
    """The referrer's side of a referral was just paid (an order, or staff approving a reviewed one): tell
    them their points are in, then any milestone and tier it reached. Keyed by the friend, so however often
    a retried event or request calls this, LINE delivers it once."""
    view = await services.program.member(referrer)
    offer = await services.program.offer_of_referral(friend, gift=bool(view and view.gift))
    paid = await _referral_points(services, referrer, friend, offer.referrer_points)
    await webhook_events.referral_completed(services, referrer, friend, paid)
    points = f"{paid:,}"
    balance = f"{view.points if view else 0:,}"

    def told(say: Say) -> str:
        paid = offer_texts.offer_text(say, "referral_completed_referrer", offer, to_referrer=True, points=points,
                                      balance=balance)
        return offer_texts.joined(paid, offer_texts.hold_note(say, offer))

    await notify(services, "referral_completed", referrer, told, retry_key("referral-completed", friend))
    await _milestone_check(services, referrer, friend)
    await _tier_check(services, referrer, f"referral:{friend}")
    await _ask(services, lambda: prompts.reward_in_reach(services, referrer))


async def _friend_paid(services: Services, friend: str) -> None:
    """The friend's own referral points were credited (their qualifying order, or staff approving it): told once,
    keyed by the operation that paid them. Held points are told now, with the day they can be spent: the news is
    the earning; a second push at the release would cost the shop a message for what the points card shows."""
    paid = await services.program.friend_reward(friend)
    if paid is None or paid[0] <= 0:
        return
    points, hold_until = paid
    key = retry_key("friend-points", friend, "referral:friend")
    if hold_until:
        day = engine.shop_time(services.program.rules, hold_until).strftime("%Y/%m/%d")
        await notify(services, "friend_points", friend, "notice_friend_points_held", key, points=f"{points:,}",
                     date=day)
    else:
        view = await services.program.member(friend)
        await notify(services, "friend_points", friend, "notice_friend_points", key, points=f"{points:,}",
                     balance=f"{view.points if view else 0:,}")


async def _friend_coupons_owed(services: Services) -> int:
    """Codes reached the friend coupon's pool: give the owed coupons (oldest first) and tell each friend once."""
    told = 0
    for friend, coupon in await services.program.friend_coupons.give_owed():
        status = await notify(services, "friend_coupon", friend, "notice_friend_coupon",
                              retry_key("friend-coupon", friend, coupon.token), code=coupon.code)
        told += status in ("sent", "deferred", "retrying")
    return told


async def _referral_points(services: Services, referrer: str, friend: str, otherwise: int) -> int:
    """What the ledger says the referrer's share of this friend's referral was (campaigns of that moment
    included): paid to the referrer, or given to the friend (相手に譲る); `otherwise` when not written yet."""
    ledger = services.program.points_ledger
    entry = await ledger.entry(referrer, f"referral:{friend}") or await ledger.entry(friend, "referral:gift")
    return int(entry["delta"]) if entry and entry["delta"] > 0 else otherwise


async def _stock_back(services: Services, reward_id: str, restock: str) -> int:
    """Stock added to a reward: tell each member who was refused it as sold out, once; `restock` names this
    addition (the stock after it), so a crash before a member is crossed off sends nothing new."""
    reward = services.program.rules.reward(reward_id)
    if reward is None:
        return 0
    told = 0
    for uid in await services.catalog.waiting_for_stock(reward_id):
        view = await services.program.member(uid)
        lang = services.texts.lang_for(view.language if view else None)
        name = reward.name.get(lang) or reward.name["ja"]
        status = await notify(services, "stock_back", uid, "notice_stock_back",
                              retry_key("stock-back", reward_id, uid, restock), name=name)
        told += status in ("sent", "deferred", "retrying")
        await services.catalog.stop_waiting(reward_id, uid)
    return told


# ---- prompts ([prompts]: bot/prompts.py says what, rewards/prompts.py counts) ---------------------------------
async def _ask(services: Services, *candidates: Callable[[], Awaitable[prompts.Prompt | None]]) -> str | None:
    """At most one prompt per outcome: the first candidate that applies (callers put a reward in reach first: it
    is news once, where an invitation comes with every order), let through the member's weekly cap
    and once-per-cause gate, then sent as a notice (quiet hours defer it). Never to a blocked member or staff.
    Returns the gate's or the notice's answer, or None when no candidate applied."""
    program = services.program
    for candidate in candidates:
        prompt = await candidate()
        if prompt is None:
            continue
        view = await program.member(prompt.to)
        if view is None or view.blocked or await is_staff_user(services, prompt.to):
            return "not_for_them"
        gate = await program.prompts.gate(prompt.to, prompt.cause, prompt.may_start)
        if gate == "SKIP":  # a repeated outcome whose prompt never started: the next candidate may apply
            continue
        if gate == "OK" or gate == "CAPPED":  # counted once per cause: what prompts cost, and what the cap saved
            await program.count(f"prompts:{prompt.kind}" if gate == "OK" else f"prompts_capped:{prompt.kind}")
        if gate not in SEND:
            log.info("prompt %s to %s not sent: %s", prompt.kind, prompt.to, gate.lower())
            return gate.lower()
        status = await send(services, prompt.kind, prompt.to, prompt.key, prompt.messages)
        await program.prompts.handed(prompt.to, prompt.cause, *prompt.also_told)
        return status
    return None


async def remind_friends(services: Services, now_ms: int | None = None) -> int:
    """The clock's part: referred friends whose reminder is due get it once (when they still have not ordered).
    In quiet hours the due ones simply wait in their schedule, re-checked when sent. Returns how many went."""
    program = services.program
    now = now_ms if now_ms is not None else program.now_ms()
    if quiet_until(program.rules.notifications, engine.shop_time(program.rules, now)) is not None:
        return 0
    told = 0
    for friend in await program.prompts.reminders_due(now, REMIND_BATCH):
        status = await _ask(services, functools.partial(prompts.friend_reminder, services, friend))
        told += status in ("sent", "deferred", "retrying")
        await program.prompts.reminder_handled(friend)  # once: sent, capped, bought meanwhile or switched off
    return told
