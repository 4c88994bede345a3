"""The Flex cards a broadcast may carry, built as the bot builds them in chat, in one language.

A broadcast sends the same messages to every recipient, so only cards that say the same to everyone qualify:
    "help"          the help card: the main actions as buttons (as ヘルプ / help answers)
    "reward:<id>"   one reward the catalog offers now ([[rewards]] in the rules, within its dates; a Shopify
                    discount only with a shop), its button opening the reward's details (the postback the
                    catalog's own button sends, so the member's claim starts as in chat)

    choices(services, lang) -> [(key, label)]     what the composer offers
    message(services, key, lang) -> a Flex message within LINE's limits; CardError for an unknown key
"""
from __future__ import annotations

from typing import Any

from bot.line import flex
from bot.line.flex import CardError, cut
from bot.line.limits import DISPLAY_TEXT_MAX, clip
from bot.services import Services
from handlers.rewards_catalog import NAME_MAX, ShowReward
from rewards.rules import Reward

HELP = "help"
REWARD = "reward:"


def _name(reward: Reward, lang: str) -> str:
    return reward.name.get(lang) or reward.name["ja"]


def _offered(services: Services) -> list[Reward]:
    return [r for r in services.program.rules.rewards if services.catalog.available(r)]


def choices(services: Services, lang: str) -> list[tuple[str, str]]:
    return [(HELP, HELP)] + [(REWARD + r.id, _name(r, lang)) for r in _offered(services)]


def message(services: Services, key: str, lang: str) -> dict[str, Any]:
    texts = services.texts
    lang = texts.lang_for(lang)

    def t(text_key: str, **values: Any) -> str:
        return texts.get(lang, text_key, **values)

    if key == HELP:
        return flex.message(t("help"), flex.render("help", t))
    wanted = key.removeprefix(REWARD) if key.startswith(REWARD) else None
    reward = next((r for r in _offered(services) if r.id == wanted), None)
    if reward is None:
        raise CardError(f"no card {key!r}: a broadcast carries {HELP!r} or {REWARD}<a reward the catalog offers now>")
    name = cut(_name(reward, lang), NAME_MAX)
    notes = None
    if reward.tier:
        tier = services.program.rules.tier_label(reward.tier, lang)
        notes = [flex.render("_note", t, text=t("rewards_tier", tier=tier))]
    contents = flex.render("reward", t, name=name, cost=f"{reward.cost:,}", notes=notes, style="primary",
                           action={"type": "postback", "label": t("flex_reward_details"),
                                   "data": ShowReward(reward.id).pack(services.postback_key),
                                   "displayText": clip(name, DISPLAY_TEXT_MAX)})
    return flex.message(t("flex_detail_alt", name=name, cost=f"{reward.cost:,}"), contents)
