"""プロフィール / profile: birthday (LINE's date picker, then a yes/no confirmation, set once), the leaderboard
nickname and whether it may be shown, and the language the bot speaks.

The nickname is typed, in a one-state flow (bot/chat/flows.py; pending for a while, one at a time):
    state     accepts                                       then
    -         AskNickname ("ニックネームを設定")              NICKNAME
    NICKNAME  a text that is the nickname                   saved: the flow ends; refused: NICKNAME again
              a menu word or an invite code                 the flow ends and the text goes on to its handler
キャンセル / cancel ends it too (handlers/cancel.py, for every flow).
Profile completion (a birthday and a chosen language) pays the `profile` rule once.
"""
from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from bot.chat import keywords
from bot.chat.context import Ctx
from bot.chat.flows import Flow
from bot.chat.postback import PostbackData
from bot.chat.router import MessageEvent, PostbackEvent, Router, carries_code, keyword, postback, text_of
from handlers.common import text
from rewards import engine
from rewards.errors import ProgramError

router = Router("profile")
log = logging.getLogger(__name__)

NICKNAME_MAX = 20
OLDEST_BIRTHDAY = date(1900, 1, 1)  # LINE's date picker accepts 1900-01-01 to 2100-12-31
PICKER_INITIAL = date(1990, 1, 1)
LANGUAGES = ("ja", "en")
_URL = re.compile(r"https?:|www\.|[a-z0-9-]+\.(?:com|net|org|jp|io|co|me|ly|app|dev|info|biz|xyz|link)\b", re.I)
_ALLOWED_FORMAT = {"\u200d", "\ufe0f"}  # the joiner and variation selector inside emoji


@dataclass(frozen=True)
class PickBirthday(PostbackData):
    prefix = "pf.bd"  # the date picker's data; the chosen date arrives in postback.params


@dataclass(frozen=True)
class ConfirmBirthday(PostbackData):
    prefix = "pf.bdy"
    day: str  # YYYY-MM-DD, as picked


@dataclass(frozen=True)
class RejectBirthday(PostbackData):
    prefix = "pf.bdn"


@dataclass(frozen=True)
class AskNickname(PostbackData):
    prefix = "pf.nick"


@dataclass(frozen=True)
class ShowNickname(PostbackData):
    prefix = "pf.show"
    on: bool


@dataclass(frozen=True)
class ChooseLanguage(PostbackData):
    prefix = "pf.lang"
    lang: str


class Step(StrEnum):
    """The value is what Redis keeps for a pending step."""
    NICKNAME = "nickname"


def _nickname_cancelled(ctx: Ctx) -> dict[str, Any]:
    return text(ctx, ctx.t("nickname_cancelled"))


FLOW = Flow("nickname", Step, cancelled=_nickname_cancelled)


# ---- nickname rules ------------------------------------------------------------------------
def clean_nickname(typed: str) -> tuple[str | None, str | None]:
    """(the nickname, None) or (None, why not): NFKC, spaces collapsed, 1-20 characters, no URLs and no
    control or invisible characters."""
    nickname = " ".join(unicodedata.normalize("NFKC", typed[:keywords.MAX_MATCH_CHARS]).split())
    if not nickname:
        return None, "empty"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Co", "Cs", "Cn") and c not in _ALLOWED_FORMAT for c in nickname):
        return None, "bad_characters"
    if _URL.search(nickname):
        return None, "url"
    if len(nickname) > NICKNAME_MAX:
        return None, "too_long"
    return nickname, None


# ---- building blocks -----------------------------------------------------------------------
def _postback(ctx: Ctx, label: str, data: PostbackData, display: str | None = None) -> dict[str, Any]:
    return {"type": "action", "action": {"type": "postback", "label": label, "data": ctx.pack(data),
                                         "displayText": display or label}}


def _today(ctx: Ctx) -> date:
    return engine.shop_time(ctx.program.rules, int(ctx.program.clock() * 1000)).date()


def birthday_picker(ctx: Ctx) -> dict[str, Any]:
    today = _today(ctx)
    return {"type": "action", "action": {
        "type": "datetimepicker", "label": ctx.t("profile_set_birthday"), "data": ctx.pack(PickBirthday()),
        "mode": "date", "initial": min(PICKER_INITIAL, today).isoformat(), "min": OLDEST_BIRTHDAY.isoformat(),
        "max": today.isoformat()}}


def language_label(ctx: Ctx, lang: str) -> str:
    """A language's chip, named in that language (日本語, English): found by whoever reads it, whatever
    language the card is in. Both are always offered: choosing completes the profile, the current one too."""
    return ctx.services.texts.get(lang, f"profile_language_name_{lang}")


def _completion_note(ctx: Ctx, points: int) -> str:
    return ctx.t("profile_completed", points=f"{points:,}") if points else ""


async def _card(ctx: Ctx, lead: str = "") -> None:
    """The profile as it stands, with a button for each thing that can still be done."""
    member = await ctx.program.member(ctx.user_id)
    if member is None:
        return
    buttons = []
    if member.birthday:
        month, day = member.birthday.split("-")
        birthday = ctx.t("profile_birthday_value", month=int(month), day=int(day))
    else:
        birthday = ctx.t("profile_not_set")
        buttons.append(birthday_picker(ctx))
    nickname = member.nickname or ctx.t("profile_not_set")
    shown = ctx.t("profile_shown_yes" if member.nickname_consent else "profile_shown_no")
    buttons.append(_postback(ctx, ctx.t("profile_set_nickname"), AskNickname()))
    if member.nickname:
        buttons.append(_postback(ctx, ctx.t("profile_hide" if member.nickname_consent else "profile_show"),
                                 ShowNickname(not member.nickname_consent)))
    buttons.extend(_postback(ctx, language_label(ctx, lang), ChooseLanguage(lang)) for lang in LANGUAGES)
    rule = ctx.program.rules.earn.get("profile")
    paid = await ctx.program.profile_points_paid(ctx.user_id)
    offer = ctx.t("profile_offer", points=f"{rule.points:,}") if rule and rule.points and not paid else ""
    body = ctx.t("profile", birthday=birthday, nickname=nickname, shown=shown,
                 language=ctx.t(f"profile_language_name_{ctx.lang}"), offer=offer)
    await ctx.answer(text(ctx, (lead + "\n\n" if lead else "") + body, *buttons))


# ---- the NICKNAME state (first in this module's routing: the next text is the nickname) -----------
_in_nickname_state = FLOW.at(Step.NICKNAME)


async def _takes_nickname(ctx: Ctx) -> bool:
    """Filter: a text in the NICKNAME state that is meant as the nickname."""
    typed = text_of(ctx)
    if typed is None or not await _in_nickname_state(ctx):
        return False
    if keywords.table().intent_of(typed) is not None or carries_code(ctx):
        # a menu word or an invite code: the member moved on, and so does the flow (ended here, so the
        # routes after this one see no step)
        await FLOW.end(ctx)
        return False
    return True


@router.on(MessageEvent, _takes_nickname)
async def on_nickname_text(ctx: Ctx) -> None:
    typed = text_of(ctx) or ""
    nickname, problem = clean_nickname(typed)
    if nickname is None:
        log.info("nickname refused for %s: %s", ctx.user_id, problem)  # never the text itself
        await ctx.answer(text(ctx, ctx.t(f"nickname_bad_{problem}", max=NICKNAME_MAX) + "\n" + ctx.t("nickname_retry")))
        return  # the step stays: the next text is another try
    member = await ctx.program.member(ctx.user_id)
    consent = bool(member and member.nickname_consent)
    await ctx.program.set_nickname(ctx.user_id, nickname, consent)
    await FLOW.end(ctx)
    if consent:
        await ctx.answer(text(ctx, ctx.t("nickname_saved_shown", nickname=nickname),
                              _postback(ctx, ctx.t("profile_hide"), ShowNickname(False))))
        return
    await ctx.answer(text(ctx, ctx.t("nickname_saved_ask", nickname=nickname),
                          _postback(ctx, ctx.t("profile_show"), ShowNickname(True)),
                          _postback(ctx, ctx.t("profile_keep_hidden"), ShowNickname(False))))


# ---- the card and its buttons -----------------------------------------------------------------
@router.on(MessageEvent, keyword("profile"))
async def on_profile(ctx: Ctx) -> None:
    await _card(ctx)


@router.on(PostbackEvent, postback(PickBirthday))
async def on_birthday_picked(ctx: Ctx, data: PickBirthday) -> None:
    member = await ctx.program.member(ctx.user_id)
    if member and member.birthday:
        await ctx.answer(text(ctx, ctx.t("birthday_already_set")))
        return
    params = ctx.event.postback.params or {}
    try:
        picked = date.fromisoformat(str(params.get("date", "")))
    except ValueError:
        log.info("birthday picker from %s without a usable date", ctx.user_id)
        await ctx.answer(text(ctx, ctx.t("birthday_not_understood"), birthday_picker(ctx)))
        return
    if not OLDEST_BIRTHDAY <= picked <= _today(ctx):
        await ctx.answer(text(ctx, ctx.t("birthday_out_of_range"), birthday_picker(ctx)))
        return
    shown = picked.strftime("%Y/%m/%d")
    await ctx.answer(text(ctx, ctx.t("birthday_confirm", date=shown),
                          _postback(ctx, ctx.t("birthday_yes"), ConfirmBirthday(picked.isoformat())),
                          _postback(ctx, ctx.t("birthday_no"), RejectBirthday())))


@router.on(PostbackEvent, postback(ConfirmBirthday))
async def on_birthday_yes(ctx: Ctx, data: ConfirmBirthday) -> None:
    picked = date.fromisoformat(data.day)  # our own signed data
    before = await ctx.program.profile_points_paid(ctx.user_id)
    if not await ctx.program.set_birthday(ctx.user_id, picked.month, picked.day):
        member = await ctx.program.member(ctx.user_id)
        if not member or member.birthday != f"{picked.month:02d}-{picked.day:02d}":
            await ctx.answer(text(ctx, ctx.t("birthday_already_set")))
            return
        # the same date confirmed again (a double tap, or this event handled again after a failure half-way,
        # whose steps set_birthday has just finished): saved, as the first try would have said
    paid = 0 if before else await ctx.program.profile_points_paid(ctx.user_id)
    await ctx.answer(text(ctx, ctx.t("birthday_saved", date=picked.strftime("%m/%d")) + _completion_note(ctx, paid)))


@router.on(PostbackEvent, postback(RejectBirthday))
async def on_birthday_no(ctx: Ctx, data: RejectBirthday) -> None:
    await ctx.answer(text(ctx, ctx.t("birthday_pick_again"), birthday_picker(ctx)))


@router.on(PostbackEvent, postback(AskNickname))
async def on_ask_nickname(ctx: Ctx, data: AskNickname) -> None:
    await FLOW.go(ctx, Step.NICKNAME)
    await ctx.answer(text(ctx, ctx.t("nickname_ask", max=NICKNAME_MAX)))


@router.on(PostbackEvent, postback(ShowNickname))
async def on_show_nickname(ctx: Ctx, data: ShowNickname) -> None:
    try:
        await ctx.program.set_nickname(ctx.user_id, None, data.on)
    except ProgramError:
        await ctx.answer(text(ctx, ctx.t("nickname_needed_first"),
                              _postback(ctx, ctx.t("profile_set_nickname"), AskNickname())))
        return
    await ctx.answer(text(ctx, ctx.t("nickname_shown" if data.on else "nickname_hidden")))


@router.on(PostbackEvent, postback(ChooseLanguage))
async def on_language(ctx: Ctx, data: ChooseLanguage) -> None:
    if data.lang not in LANGUAGES:
        await ctx.answer(text(ctx, ctx.t("button_not_valid")))
        return
    before = await ctx.program.profile_points_paid(ctx.user_id)
    await ctx.program.set_language(ctx.user_id, data.lang)
    ctx.lang = ctx.services.texts.lang_for(data.lang)  # this very answer already in the new language
    paid = 0 if before else await ctx.program.profile_points_paid(ctx.user_id)
    await _card(ctx, ctx.t("language_set") + _completion_note(ctx, paid))
