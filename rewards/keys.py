"""Every Redis key of the domain, in one place.

One member's keys share the hash tag {user id}, so a Lua script over them stays in one cluster slot.
"""
import zlib
from typing import Any

PREFIX = "shokai"


def member(uid: str) -> str:
    """The member's one hash: their record (FIELDS below) and their ledger (ops, see there) together. A plain
    member is one key: a second one cost ~120 bytes before its contents (docs/benchmarks.md)."""
    return ops(uid)


# The member record's fields, in the ops hash beside the ledger: '#' and an upper-case letter (an op id that
# starts with '#' is stored as '##' + op id, the ledger's own fields are '#n', '#q', '#c…' and digits, so none
# can clash). Short, since every member carries them (~90 bytes less than the names spelled out). The code reads
# and writes them by their long names: field() gives the stored one, read_member() reads them back.
#   long name            stored    what
#   points               #P        spendable points (below zero while a debt is open)
#   pending_points       #H        points on hold
#   debt                 #D        points owed (taken back after being spent)
#   lifetime             #L        points ever earned
#   earned:YYYY-MM       #EYYYY-MM points earned in that month (tiers)
#   last_activity        #A        the last ledger write (ms)
#   first_seen_at        #F        first sighting (ms)
#   first_seen_via       #V        how they were first seen (follow, message…)
#   followed_at          #W        when they first followed (ms)
#   last_follow_at       #Wl       the last follow or unblock (ms)
#   last_seen_at         #T        the last sighting (ms)
#   blocked              #X        '1' while they block us (absent otherwise)
#   blocked_at           #Xt       when they last blocked us (ms)
#   lang                 #G        their LINE app's language
#   lang_pref            #Gp       the language they chose
#   code                 #I        their invite code
#   member_token         #M        their counter QR's token
#   referred_by          #B        who referred them
#   referrals_completed  #N        friends whose referral completed
#   referrals:YYYY-MM    #RYYYY-MM referrals completed in that month
#   ranked:YYYY-MM       #KYYYY-MM referrals that month counted on the board
#   first_order          #O        their first order's id
#   orders               #Oc       orders made
#   spent                #$        yen spent
#   spent:YYYY-MM        #SYYYY-MM yen spent in that month
#   refunded:<order id>  #U<order> when that order was refunded (ms)
#   birthday             #Y        MM-DD
#   gift                 #Z        '1': their referral rewards go to the friend
#   nickname             #Nk       for the board
#   nickname_consent     #Nc       '1': the board may show it
#   tier_peak            #Tp       the highest tier reached (tiers that never go down)
#   tier_told            #Tt       the last tier rise they were told of
#   customer_id          #C        the shop customer linked to them (account link; true only while that
#                                  customer's record names them back: rewards/links.py)
#   erased_at            #!        on an erased member's pseudonym only: when the person was erased (rewards/privacy.py)
FIELDS = {
    "points": "#P", "pending_points": "#H", "debt": "#D", "lifetime": "#L", "last_activity": "#A",
    "first_seen_at": "#F", "first_seen_via": "#V", "followed_at": "#W", "last_follow_at": "#Wl",
    "last_seen_at": "#T", "blocked": "#X", "blocked_at": "#Xt", "lang": "#G", "lang_pref": "#Gp", "code": "#I",
    "member_token": "#M", "referred_by": "#B", "referrals_completed": "#N", "first_order": "#O", "orders": "#Oc",
    "spent": "#$", "birthday": "#Y", "gift": "#Z", "nickname": "#Nk", "nickname_consent": "#Nc",
    "tier_peak": "#Tp", "tier_told": "#Tt", "customer_id": "#C", "erased_at": "#!",
}
# the fields with a month (or an order id) after the prefix: "earned:2026-12" is "#E2026-12"
FIELD_PREFIXES = {"earned:": "#E", "spent:": "#S", "referrals:": "#R", "ranked:": "#K", "refunded:": "#U"}


def field(name: str) -> str:
    """The stored name of a member field (FIELDS, FIELD_PREFIXES): field("points") == "#P"."""
    if name in FIELDS:
        return FIELDS[name]
    prefix, colon, rest = name.partition(":")
    return FIELD_PREFIXES[prefix + colon] + rest


async def read_member(redis: Any, uid: str, *extra: str) -> dict[str, str]:
    """The member's record by long names (every FIELDS name that is set, and the `extra` ones such as
    "earned:2026-12"): {} for no member. An HMGET, not HGETALL: the hash also holds the ledger."""
    names = [*FIELDS, *extra]
    values = await redis.hmget(member(uid), [field(n) for n in names])
    return {n: v.decode() for n, v in zip(names, values, strict=True) if v is not None}


def lua_fields() -> str:
    """FIELDS and FIELD_PREFIXES as a Lua table F, put in front of every script (rewards/part.py): F.points,
    F['earned:'] .. month."""
    pairs = {**FIELDS, **FIELD_PREFIXES}
    return "local F = {" + ", ".join(f"[{_lua(k)}] = {_lua(v)}" for k, v in pairs.items()) + "}"


def _lua(text: str) -> str:
    return "'" + text + "'"  # the names above hold no quote or backslash


def ops(uid: str) -> str:
    # hash: the ledger ("<entry id>" -> the entry, an earning's lot in front of it: "<lot>;<entry>", "#n" -> the
    # last id), operation id -> ledger entry id, the caps ("#c<rule>|<period>" -> points) and the lot queue
    # ("#q" -> the spendable lots' ids by expiry), see ledger.lua and ledger_codec.py: one key, not five
    return f"{PREFIX}:m:{{{uid}}}:ops"


def hold_queue(uid: str) -> str:
    return f"{PREFIX}:m:{{{uid}}}:holdq"  # zset: lots on hold, by release time


def ledger_keys(uid: str) -> list[str]:
    """The seven keys every ledger script takes, in the order ledger.lua's K() reads them. The ledger, lots, lot
    queue and caps places name the ops hash, which holds them, so the scripts' other KEYS keep their places."""
    return [member(uid), ops(uid), ops(uid), ops(uid), ops(uid), hold_queue(uid), ops(uid)]


def orders(uid: str) -> str:
    return f"{PREFIX}:m:{{{uid}}}:orders"  # hash: order id -> the first answer (JSON)


def referral(uid: str) -> str:
    return f"{PREFIX}:m:{{{uid}}}:ref"  # hash: how this member was referred (referrer, status, …)


def referrals_made(uid: str) -> str:
    return f"{PREFIX}:m:{{{uid}}}:made"  # hash: friend -> pending | completed | voided


def guesses(uid: str) -> str:
    return f"{PREFIX}:m:{{{uid}}}:guesses"  # counter of unknown codes sent, expiring


def codes(value: str) -> str:
    """hash: invite code -> the member who owns it, for every code starting with the same two characters.
    A key per code cost ~100 bytes before its 33-byte value; 1,024 buckets (32 x 32) stay small listpacks
    up to ~100 codes each at the default hash-max-listpack-entries (128), ~500 at 512 (docs/benchmarks.md)."""
    return f"{PREFIX}:codes:{value[:2]}"


def order_owner(order_id: str) -> str:
    return f"{PREFIX}:order:{order_id}"  # string: the buyer of an order


def birthdays(month: int) -> str:
    return f"{PREFIX}:birthdays:{month:02d}"  # set: members whose birthday is in that month


# The per-member entries of the shared schedule and member list are spread over BUCKETS small keys by a hash of
# the user id. One zset or set over every member is a skiplist / hash table: ~130 and ~80 bytes a member; a
# bucket of ~100 stays a compact ziplist/listpack (~45 and ~37 bytes), up to zset-/hash-max-ziplist-entries
# (1,024 on the embedded Redis, README: ~1,000,000 members). Readers go over every bucket in one pipeline.
BUCKETS = 1024


def bucket(uid: str) -> int:
    return zlib.crc32(uid.encode()) % BUCKETS


def due(uid: str) -> str:
    """zset: member -> the next time their points change by themselves (expiry, release); the bucket of `uid`."""
    return f"{PREFIX}:due:{bucket(uid)}"


def members(uid: str) -> str:
    """hash: member id -> '' for every member in the bucket of `uid` (a hash: a 6.x set of strings is never
    compact)."""
    return f"{PREFIX}:members:{bucket(uid)}"


DUE_BUCKETS = [f"{PREFIX}:due:{n}" for n in range(BUCKETS)]
MEMBER_BUCKETS = [f"{PREFIX}:members:{n}" for n in range(BUCKETS)]
WARNED = f"{PREFIX}:warned"  # hash: member -> the expiry time they were last warned about
SETTLE = f"{PREFIX}:settle"  # set of friends whose referral still has a referrer-side step to do
STATS = f"{PREFIX}:stats"  # hash of program counters
AUDIT = f"{PREFIX}:audit"  # stream: every staff action
# hash: an audited operation's id -> its audit entry's id (audit_once.lua). Its hash tag is AUDIT's whole name,
# so both hash to one cluster slot (a key without braces hashes on all of it)
AUDIT_OPS = f"{{{AUDIT}}}:ops"


def fingerprints(uid: str) -> str:
    return f"{PREFIX}:m:{{{uid}}}:fp"  # set: order fingerprints (hashed by the shop) seen on this member's orders


# ---- the program's numbers (rewards/stats.py): global keys, each written by a separate command ----------
def stats_day(day: str) -> str:
    return f"{PREFIX}:stats:day:{day}"  # hash: the counters of one shop-time day (YYYY-MM-DD)


TOP_REFERRERS = f"{PREFIX}:stats:referrers"  # zset: referrer -> referrals completed (a copy of the member's count)
CYCLES = f"{PREFIX}:stats:cycles"  # hash: referrer -> "joined_ms|first_completed_ms" (written once)
STATS_OUTSTANDING = f"{PREFIX}:stats:outstanding"  # string: "points|at ms", the members' points last summed (stats.py)


# ---- reward catalog, claims and coupons (rewards/catalog.py) ------------------------------
# A reward's stock, its reservations and its code pool share the hash tag {r:<reward id>}, so each
# catalog script runs in one slot; a member's claims and coupons live in the member's own slot.
def reward_stock(reward_id: str) -> str:
    return f"{PREFIX}:reward:{{r:{reward_id}}}"  # hash: taken (held + issued), claimed (issued), added (by staff)


def reward_reservation(reward_id: str, claim_id: str) -> str:
    return f"{PREFIX}:reward:{{r:{reward_id}}}:res:{claim_id}"  # hash: member, at, state, code (pool)


def reward_held(reward_id: str) -> str:
    return f"{PREFIX}:reward:{{r:{reward_id}}}:held"  # zset: claim id -> reserved at (ms), not yet issued


def reward_pool(reward_id: str) -> str:
    return f"{PREFIX}:reward:{{r:{reward_id}}}:pool"  # list: uploaded codes not yet given out


def reward_pool_seen(reward_id: str) -> str:
    return f"{PREFIX}:reward:{{r:{reward_id}}}:pool:seen"  # set: every code ever uploaded (no code twice)


def reward_waiting(reward_id: str) -> str:
    return f"{PREFIX}:reward:{{r:{reward_id}}}:waiting"  # set: members refused it as sold out, to tell on restock


def claim(uid: str, claim_id: str) -> str:
    return f"{PREFIX}:m:{{{uid}}}:claim:{claim_id}"  # hash: reward, token, code, state, reason, expires_at


def claimed(uid: str) -> str:
    return f"{PREFIX}:m:{{{uid}}}:claimed"  # hash: reward id -> claims made (under way or issued)


def coupons(uid: str) -> str:
    return f"{PREFIX}:m:{{{uid}}}:coupons"  # hash: coupon token -> the coupon (JSON)


def coupon_order(uid: str) -> str:
    return f"{PREFIX}:m:{{{uid}}}:coupons:order"  # zset: coupon token -> issued at (ms)


def coupons_used(uid: str) -> str:
    return f"{PREFIX}:m:{{{uid}}}:coupons:used"  # hash: coupon token -> used at (ms), written once


def coupon(token: str) -> str:
    return f"{PREFIX}:coupon:{token}"  # string: the member who holds the coupon with this token


# ---- member cards and the referrers' board (rewards/members.py, rewards/board.py) ----------------------------
def member_token(token: str) -> str:
    return f"{PREFIX}:mtoken:{token}"  # string: the member whose counter QR carries this token


def leaderboard(month: str) -> str:
    return f"{PREFIX}:board:{month}"  # zset: referrer -> referrals completed in that month (YYYY-MM)


# ---- the referred friend's welcome coupon (rewards/friend_coupons.py) ------------------------------------
# The coupon itself is one of the friend's coupons (coupons(uid) above, token in their referral hash); its
# pool is the reward pool of rules.FRIEND_COUPON_POOL, so uploads and pool_add.lua serve it as any pool.
def friend_coupon_code(code: str) -> str:
    return f"{PREFIX}:fcoupon:{code}"  # string: the friend a welcome coupon code was given to (SET NX: unique)


def friend_coupon_taken(pool_id: str, friend: str) -> str:
    # hash in the pool's slot: the pool code popped for this friend, so a retried pop hands back the same one
    return f"{PREFIX}:reward:{{r:{pool_id}}}:friend:{friend}"


FRIEND_COUPONS_OWED = f"{PREFIX}:fcoupon:owed"  # zset: friend -> when their coupon found the pool empty (ms)


# ---- prompts (rewards/prompts.py) ----------------------------------------------------------------------------
def prompts(uid: str) -> str:
    # hash in the member's slot: "w" the ISO week counted, "n" prompts in it, and per cause "c:<cause>" (pruned
    # after a week) or "o:<cause>" (kept: once ever) -> "<week>:h" (let through) | "<week>:d" (handed to LINE)
    return f"{PREFIX}:m:{{{uid}}}:prompts"


REMINDERS_DUE = f"{PREFIX}:prompts:reminders"  # zset: referred friend -> when their one reminder is due (ms)


# ---- invites through LIFF (rewards/pre_follow.py, rewards/shares.py) ------------------------------------------
def pre_follow(uid: str) -> str:
    """string: "code|referrer|at ms" while a person attributed through LIFF before following awaits their follow;
    in their own slot, expiring after the referral window"""
    return f"{PREFIX}:m:{{{uid}}}:prefollow"


def shares_day(day: str) -> str:
    return f"{PREFIX}:shares:{day}"  # set: "user|code" shared through the LIFF page that shop-time day (counted once)


# ---- account link: shop customers and LINE users (rewards/links.py) ----------------------------------------
# A customer's keys share the hash tag {c:<customer id>} (customer ids never hold braces: bot/web/api/account_links.py)
def customer(customer_id: str) -> str:
    return f"{PREFIX}:cust:{{c:{customer_id}}}"  # hash: user (the linked LINE user), op (the link's nonce), prev, at


def customer_orders(customer_id: str) -> str:
    # hash: order id -> the unattributed order (JSON: amount, at, fingerprint), kept until credited, dropped or old
    return f"{PREFIX}:cust:{{c:{customer_id}}}:unattributed"


def customer_order_ids(customer_id: str) -> str:
    return f"{PREFIX}:cust:{{c:{customer_id}}}:orders"  # set: every order id reported for this customer


def link_nonce(nonce: str) -> str:
    return f"{PREFIX}:linknonce:{nonce}"  # hash: customer, link_token, user, expires_at; used_by once taken


def link_token(token: str) -> str:
    return f"{PREFIX}:linktoken:{token}"  # string: the LINE user we issued this link token for (10 minutes)


LINKS_SETTLE = f"{PREFIX}:links:settle"  # hash: nonce -> a link whose steps are still to finish (JSON)


# ---- Shopify (rewards/shopify.py) -------------------------------------------------------------------------------
SHOPIFY_CUSTOMERS = f"{PREFIX}:shopify:customers"  # set: every shop customer id we hold something for (shop/redact)
SHOPIFY_EARLY_ORDERS = f"{PREFIX}:shopify:early"  # set: order ids with a refund that came before the order
SHOPIFY_DATA_REQUESTS = f"{PREFIX}:shopify:data_requests"  # hash: request id -> what we hold (JSON), for staff


def shopify_early_refunds(order_id: str) -> str:
    return f"{PREFIX}:shopify:{{o:{order_id}}}:early"  # hash: refund id -> yen, a refund waiting for its order


# ---- monthly budgets (rewards/budget.py) -------------------------------------------------------------------
# Every budget key shares the hash tag {budget}, so budget_reserve / budget_commit / budget_release run in one slot.
# They cannot be in a member's script: the completion's own script runs in the friend's slot (see budget.py).
def budget_month(kind: str, month: str) -> str:
    # hash: "spent" (yen: committed + reserved), "r:<op>" (yen reserved, in flight), "c:<op>" (yen committed),
    # "full" (when it first refused a reservation), "alert:80" / "alert:100" (staff told, once a month)
    return f"{PREFIX}:budget:{{budget}}:{kind}:{month}"


BUDGET_HELD = f"{PREFIX}:budget:{{budget}}:held"  # zset: friend -> when their completion was held (BUDGET), ms
# ---- referral rings (rewards/ring_watch.py) ---------------------------------------------------------------------
def ring_marks(uid: str) -> str:
    # set in the member's slot: "fp:", "cust:", "addr:" + a hash seen on their orders, "used:<member>" for a
    # coupon of that member's on one of their orders
    return f"{PREFIX}:m:{{{uid}}}:rings"


def ring_mark(mark: str) -> str:
    return f"{PREFIX}:rings:mark:{mark}"  # set: the members a mark was seen on (a single-key write)


RING_GROUPS = f"{PREFIX}:rings:groups"  # hash: group id -> the flagged group (JSON: members, score, reasons, at)
RING_SCANNED = f"{PREFIX}:rings:scanned"  # string: when the last whole-graph pass ran (ms)

# ---- a member's data on request (rewards/privacy.py) -------------------------------------------------------------
# hash: user id -> an erasure under way (JSON: its pseudonym and what to clean), until its last step; the clock
# finishes one a crash left half done
PRIVACY_ERASING = f"{PREFIX}:privacy:erasing"
# hash: keyed hash of an erased user id -> when (ms). Never the id itself: it tells a returning person from a new one
PRIVACY_ERASED = f"{PREFIX}:privacy:erased"
PRIVACY_KEY = f"{PREFIX}:privacy:key"  # string: the key of those keyed hashes (random, made once per database)


def experiment(exp_id: str) -> str:
    """Hash of one offer experiment's people (rewards/experiments.py): `end` (its ending, JSON, once),
    `u:<referrer>` (the arm recorded at first exposure), `x:`/`k:<referrer>` (their friends acquired, their cost
    in yen), `f:<friend>` (a: attribution counted, c: completion counted). Hash tag {id}: one slot with the
    counters, for experiment_count.lua."""
    return f"{PREFIX}:exp:{{{exp_id}}}"


def experiment_counts(exp_id: str) -> str:
    """Hash of one offer experiment's counters, `<arm>:<metric>`: small, so the report reads it whole."""
    return f"{PREFIX}:exp:{{{exp_id}}}:counts"
