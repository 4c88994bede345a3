"""Every Redis key of the domain, in one place.

One member's keys share the hash tag {user id}, so a Lua script over them stays in one cluster slot.
"""
PREFIX = "shokai"


def member(uid: str) -> str:
    return f"{PREFIX}:m:{{{uid}}}"  # hash: first sighting, points, lifetime, code, blocked, first_order…


def ledger(uid: str) -> str:
    return f"{PREFIX}:m:{{{uid}}}:ledger"  # list of JSON ledger entries, oldest first


def ops(uid: str) -> str:
    return f"{PREFIX}:m:{{{uid}}}:ops"  # hash: operation id -> ledger entry id


def orders(uid: str) -> str:
    return f"{PREFIX}:m:{{{uid}}}:orders"  # hash: order id -> the first answer (JSON)


def referral(uid: str) -> str:
    return f"{PREFIX}:m:{{{uid}}}:ref"  # hash: how this member was referred (referrer, status, …)


def referrals_made(uid: str) -> str:
    return f"{PREFIX}:m:{{{uid}}}:made"  # hash: friend -> pending | completed | voided


def guesses(uid: str) -> str:
    return f"{PREFIX}:m:{{{uid}}}:guesses"  # counter of unknown codes sent, expiring


def code(value: str) -> str:
    return f"{PREFIX}:code:{value}"  # string: the member who owns the invite code


def order_owner(order_id: str) -> str:
    return f"{PREFIX}:order:{order_id}"  # string: the buyer of an order


MEMBERS = f"{PREFIX}:members"  # set of every member id
SETTLE = f"{PREFIX}:settle"  # set of friends whose referral still has a referrer-side step to do
STATS = f"{PREFIX}:stats"  # hash of program counters
AUDIT = f"{PREFIX}:audit"  # stream: every staff action
