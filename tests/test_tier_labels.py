"""Tier labels: people read a tier's label in their language (member card, catalog, refusals, the tier-up
notice, the staff member view), while the tier's name stays the id that is stored and compared; rules
without labels show the name, and a label without Japanese stops loading with a clear message."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import pytest_asyncio

from handlers.rewards_catalog import ShowReward
from linesim.platform import new_user_id, text_of
from rewards.rules import RulesError, load_rules
from tests.support.harness import Bot, BotWith, converse, pack
from tests.support.rules_helpers import DEFAULT, variant

STAFF = "U" + "7" * 32
NO_LABELS = re.sub(r"^label = .*\n", "", DEFAULT, flags=re.M)


@pytest_asyncio.fixture
async def shop(bot_with: BotWith, tmp_path: Path) -> Bot:
    rules = variant(tmp_path, notifications__quiet_hours='""')  # the tier-up notice goes out at any hour
    return await bot_with(rewards_config=rules, staff_user_ids=frozenset({STAFF}))


async def member(bot: Bot, lang: str, points: int = 0) -> str:
    uid = new_user_id()
    await converse(bot.platform, uid, bot.platform.follow(uid, language=lang))
    if points:
        await bot.services.program.adjust(uid, points, "test", "test", f"seed:{uid}")
    return uid


def shown(messages: list[dict]) -> str:
    """Everything a person reads: texts, alt texts and the texts inside Flex cards."""
    return text_of(messages) + json.dumps([m.get("contents") for m in messages], ensure_ascii=False)


@pytest.mark.parametrize("lang, tier, next_tier", [
    ("ja", "シルバーランク", "ゴールドランク"),
    ("en", "Silver tier", "more to Gold"),
])
async def test_the_member_card_shows_the_label_in_the_members_language(
        shop: Bot, lang: str, tier: str, next_tier: str) -> None:
    uid = await member(shop, lang, points=1500)
    assert (await shop.services.program.member(uid)).tier == "silver"  # the id is unchanged underneath
    card = await converse(shop.platform, uid, shop.platform.text(uid, "ポイント" if lang == "ja" else "points"))
    flex = [m for m in card if m["type"] == "flex"]
    assert flex and tier in flex[0]["altText"], flex[0]["altText"]
    assert tier in shown(flex) and next_tier in shown(flex)
    assert "silver" not in shown(flex)  # the id, lower case: never what people read


async def test_the_tier_up_notice_names_the_label_in_japanese(shop: Bot) -> None:
    uid = await member(shop, "ja")
    status, body = await shop.admin("POST", "/api/v1/conversions",
                                    {"order_id": f"o-{uid}", "user_id": uid, "amount": 100_000})
    assert status == 200, body
    view = await shop.services.program.member(uid)
    assert view is not None and view.tier == "silver"
    status, api = await shop.admin("GET", f"/api/v1/members/{uid}")
    assert status == 200 and api["tier"] == "silver"  # the admin API keeps the id (the contract)
    pushed = [m["text"] for c in shop.platform.calls if c.endpoint == "push" and c.status == 200
              for m in c.body["messages"] if c.to == [uid]]
    assert any("ランクがシルバーに上がりました" in text for text in pushed), pushed
    assert not any("silver" in text for text in pushed)


@pytest.mark.parametrize("lang, refusal, detail", [
    ("ja", "シルバーランク以上の方の特典", "対象：シルバーランク以上"),
    ("en", "is for Silver members and up", "For Silver members and up"),
])
async def test_a_tier_gated_reward_names_the_label(shop: Bot, lang: str, refusal: str, detail: str) -> None:
    uid = await member(shop, lang)  # bronze: the tote bag is for silver and up
    answer = shown(await converse(shop.platform, uid, shop.platform.postback(uid, pack(ShowReward("tote")))))
    assert refusal in answer and detail in answer, answer
    assert "silver" not in answer
    catalog = shown(await converse(shop.platform, uid, shop.platform.text(uid, "特典" if lang == "ja" else "rewards")))
    assert ("シルバー以上" if lang == "ja" else "Silver and up") in catalog


async def test_staff_see_the_label_in_the_member_view(shop: Bot) -> None:
    uid = await member(shop, "en", points=1500)  # the member's language does not matter: the staff's does
    code = await shop.services.program.invite_code(uid)
    answer = text_of(await converse(shop.platform, STAFF, shop.platform.text(STAFF, f"会員 {code}")))
    assert "ランク シルバー" in answer, answer


def test_rules_without_labels_show_the_name(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(NO_LABELS, encoding="utf-8")
    rules = load_rules(path)
    assert [t.label for t in rules.tiers] == [{}, {}, {}, {}]
    assert rules.tier_label("gold", "ja") == "gold" and rules.tier_label("gold", "en") == "gold"


def test_a_label_falls_back_to_japanese_and_an_unknown_tier_to_its_name(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(DEFAULT.replace('label = { ja = "ゴールド", en = "Gold" }', 'label = { ja = "ゴールド" }'),
                    encoding="utf-8")
    rules = load_rules(path)
    assert rules.tier_label("gold", "en") == "ゴールド" and rules.tier_label("silver", "en") == "Silver"
    assert rules.tier_label("diamond", "ja") == "diamond"  # e.g. a tier renamed since a notice was kept


@pytest.mark.parametrize("label", ['{ en = "Gold" }', '"ゴールド"', '{ ja = 5 }'])
def test_a_bad_label_stops_loading_and_names_its_line(tmp_path: Path, label: str) -> None:
    path = tmp_path / "rules.toml"
    text = DEFAULT.replace('label = { ja = "ゴールド", en = "Gold" }', f"label = {label}")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    message = str(caught.value)
    line = next(n for n, row in enumerate(text.splitlines(), 1) if row.startswith(f"label = {label}"))
    assert "tiers.levels[2].label" in message and "at least ja" in message, message
    assert f"line {line} " in message, (message, line)
