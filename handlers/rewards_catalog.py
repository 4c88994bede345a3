"""特典 / rewards: the catalog arrives with the reward engine; until then, say so kindly with the balance."""
from bot.dispatcher import Ctx, MessageEvent, Router, words
from handlers.common import text

router = Router("rewards_catalog")


@router.on(MessageEvent, words("特典", "とくてん", "rewards", "reward", "特典カタログ"))
async def on_rewards(ctx: Ctx) -> None:
    member = await ctx.program.member(ctx.user_id)
    await ctx.answer(text(ctx, ctx.t("rewards", points=f"{member.points if member else 0:,}")))
