"""One module per intent. The order here is the routing order: the first match handles the event."""
from bot.chat.router import Router
from handlers import (
    account_link,
    cancel,
    coupons,
    fallback,
    follow,
    gift,
    help,
    invite,
    leaderboard,
    points,
    privacy_data,
    privacy_forget,
    profile,
    referral_code,
    referral_status,
    rewards_catalog,
    richmenu_switch,
    staff_broadcast,
    staff_coupons,
    staff_members,
    staff_numbers,
    staff_review,
    unfollow,
)


def build_router() -> Router:
    root = Router("root")
    # キャンセル / cancel first, for every conversation flow in one place (bot/chat/flows.py)
    root.include(cancel.router_for(profile.FLOW, staff_broadcast.FLOW, staff_members.FLOW, staff_coupons.FLOW))
    # then staff (every staff route has the is_staff filter, last, so that only staff words or a staff step
    # ask the staff set): the commands, then a flow state's typed input
    root.include(staff_broadcast.router, staff_numbers.router, staff_members.router,
                 staff_coupons.router, staff_review.router, staff_broadcast.inputs, staff_members.inputs,
                 staff_coupons.inputs)
    # referral status before invite: its exact words ("referrals") would otherwise be taken, as a typo
    # forgiven, for the invite word "referral"
    root.include(follow.router, unfollow.router, profile.router, help.router, referral_status.router,
                 invite.router, points.router, account_link.router, rewards_catalog.router, coupons.router, leaderboard.router, gift.router,
                 privacy_data.router, privacy_forget.router,
                 referral_code.router, richmenu_switch.router, fallback.router)
    return root
