"""The staff rich menu's "customer view" switch, and the way back.

LINE switches the menu itself (richmenuswitch) and sends us a postback; we answer with a button back to
the staff menu, which links it to the user again. Anyone else (someone no longer staff) is told the button
no longer works, as for any stale button.
"""
from dataclasses import dataclass

from bot.chat.context import Ctx
from bot.chat.postback import PostbackData
from bot.chat.router import PostbackEvent, Router, postback
from bot.chat.staff import is_staff
from bot.richmenu.spec import CUSTOMER_ALIAS, MenuSwitched
from bot.richmenu.staff import link_staff_menu
from handlers.common import text

router = Router("richmenu_switch")


@dataclass(frozen=True)
class BackToStaffMenu(PostbackData):
    prefix = "rm.back"


@router.on(PostbackEvent, postback(MenuSwitched))
async def on_switched(ctx: Ctx, data: MenuSwitched) -> None:
    if data.to != CUSTOMER_ALIAS:
        return  # a plain tab switch: LINE has already changed the menu, nothing to say
    if not await is_staff(ctx):
        await ctx.answer(text(ctx, ctx.t("button_not_valid")))
        return
    label = ctx.t("richmenu_back_to_staff")
    back = {"type": "action", "action": {"type": "postback", "label": label,
                                         "data": ctx.pack(BackToStaffMenu()), "displayText": label}}
    await ctx.answer(text(ctx, ctx.t("richmenu_customer_view"), back))


@router.on(PostbackEvent, postback(BackToStaffMenu))
async def on_back_to_staff(ctx: Ctx, data: BackToStaffMenu) -> None:
    if not await is_staff(ctx):
        await ctx.answer(text(ctx, ctx.t("button_not_valid")))
        return
    linked = await link_staff_menu(ctx.services.line, ctx.services.redis, ctx.user_id)
    await ctx.answer(text(ctx, ctx.t("richmenu_staff_view" if linked else "richmenu_no_staff_menu")))
