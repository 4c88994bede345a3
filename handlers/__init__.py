"""One module per intent. The order here is the routing order: the first match handles the event."""
from bot.dispatcher import Router
from handlers import (
    coupons,
    fallback,
    follow,
    gift,
    help,
    invite,
    points,
    referral_code,
    rewards_catalog,
    richmenu_switch,
    unfollow,
)


def build_router() -> Router:
    root = Router("root")
    root.include(follow.router, unfollow.router, help.router, invite.router, points.router,
                 rewards_catalog.router, coupons.router, gift.router, referral_code.router, richmenu_switch.router,
                 fallback.router)
    return root
