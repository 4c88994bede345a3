"""An unfollow is a block: the sighting already marked the member blocked; nothing can be sent to them."""
import logging

from bot.chat.context import Ctx
from bot.chat.router import Router, UnfollowEvent

router = Router("unfollow")
log = logging.getLogger(__name__)


@router.on(UnfollowEvent)
async def on_unfollow(ctx: Ctx) -> None:
    log.info("member %s blocked the account", ctx.user_id)
