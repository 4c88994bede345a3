"""How the chat names another member (the referral status, the leaderboard): one rule for every card, so the
same friend reads the same everywhere. The member themself is "あなた" / "You"; someone who consented to show
their nickname, by it; anyone else by a masked label that never changes ("会員 K7QX", rewards/names.py)."""
from bot.chat.context import Ctx
from bot.line.flex import cut
from rewards.names import masked_label

NAME_MAX = 20


def person_name(ctx: Ctx, user_id: str, nickname: str | None) -> str:
    """`nickname`: only what the member consented to show (rewards.names.shown_nickname)."""
    if user_id == ctx.user_id:
        return ctx.t("name_you")
    if nickname:
        return cut(nickname, NAME_MAX)
    return ctx.t("name_member", label=masked_label(user_id))
