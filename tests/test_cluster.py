"""Cluster readiness: one hash slot per script call, keys declared, REDIS_URL's cluster flag honoured.

The whole suite runs with tests/support/slot_guard.py's checks on every script call (conftest's autouse fixture);
`make test` also runs the cluster-marked modules against a real three-master cluster.
"""
from __future__ import annotations

import inspect
from types import ModuleType

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from bot.config import Settings
from bot.infra import keys as bkeys
from bot.infra.redis_conn import cluster_node_url, connect, is_cluster_url
from linesim.platform import new_user_id
from rewards import keys as rkeys
from tests.support.cluster import CLUSTER
from tests.support.harness import Bot, converse
from tests.support.slot_guard import CrossSlot, one_slot, slot_of


def builders(module: ModuleType, prefix: str, owner: str) -> list[str]:
    """The keys every `prefix…` function of a keys module builds for one owner (other arguments made up)."""
    out = []
    for name, fn in vars(module).items():
        if name.startswith(prefix) and callable(fn):
            params = list(inspect.signature(fn).parameters)
            out.append(fn(owner, *(f"x{i}" for i in range(len(params) - 1))))
    assert len(out) >= 2, f"no {prefix}… key builders found"
    return out


def test_keys_that_one_script_takes_together_share_a_slot() -> None:
    uid, other = new_user_id(), new_user_id()
    member_keys = [*rkeys.ledger_keys(uid), rkeys.orders(uid), rkeys.referral(uid), rkeys.referrals_made(uid),
                   rkeys.guesses(uid), rkeys.claim(uid, "c1"), rkeys.claimed(uid), rkeys.coupons(uid),
                   rkeys.coupon_order(uid), rkeys.coupons_used(uid)]
    assert len({slot_of(k) for k in member_keys}) == 1
    assert slot_of(rkeys.member(uid)) != slot_of(rkeys.member(other)) or uid == other
    # every key builder of one reward, one broadcast job or one partition, whatever names they have now
    assert len({slot_of(k) for k in builders(rkeys, "reward_", "r1")}) == 1
    assert len({slot_of(k) for k in builders(bkeys, "broadcast", "a" * 32)}) == 1
    for p in range(8):
        assert len({slot_of(k) for k in (bkeys.stream(p), bkeys.seen(p, "e1"), bkeys.lease(p), bkeys.attempts(p),
                                          bkeys.dead(p))}) == 1
    # the partitions spread over the slots (else one node takes every event)
    assert len({slot_of(bkeys.stream(p)) for p in range(8)}) == 8


def test_the_guard_refuses_keys_of_two_slots() -> None:
    one_slot("fine", ["shokai:m:{U1}", "shokai:m:{U1}:ledger"])
    with pytest.raises(CrossSlot):
        one_slot("bad", ["shokai:m:{U1}", "shokai:m:{U2}"])


async def test_the_guard_refuses_a_script_touching_an_undeclared_key(clean_redis: str) -> None:
    redis = connect(clean_redis)
    try:
        declared = redis.register_script("return redis.call('SET', KEYS[1], ARGV[1])")
        assert await declared(keys=["shokai:t:{x}"], args=["1"])
        sneaky = redis.register_script("return redis.call('SET', KEYS[1] .. ':more', ARGV[1])")
        with pytest.raises(ResponseError, match="UNDECLARED_KEY"):
            await sneaky(keys=["shokai:t:{x}"], args=["1"])
        assert await redis.get("shokai:t:{x}:more") is None
    finally:
        await redis.aclose()


def test_redis_url_names_a_cluster() -> None:
    assert is_cluster_url("redis://r.example:7000?cluster=true")
    assert is_cluster_url("rediss://:pw@r.example:7000/0?ssl_cert_reqs=none&cluster=true")
    assert not is_cluster_url("redis://r.example:6379/0")
    assert cluster_node_url("rediss://:pw@r.example:7000/0?ssl_cert_reqs=none&cluster=true") == \
        "rediss://:pw@r.example:7000?ssl_cert_reqs=none"
    s = Settings.from_env({"LINE_CHANNEL_SECRET": "s", "LINE_CHANNEL_ACCESS_TOKEN": "t",
                           "PUBLIC_BASE_URL": "https://x.example", "REDIS_URL": "redis://r:7000",
                           "REDIS_CLUSTER": "1"})
    assert s.redis_cluster


async def test_connect_gives_a_cluster_client_for_a_cluster_url() -> None:
    client = connect("redis://127.0.0.1:1/0?cluster=true")  # not connected until first used
    assert isinstance(client, RedisCluster)
    await client.aclose()


@pytest.mark.skipif(not CLUSTER, reason="only on the test cluster (SHOKAI_TEST_CLUSTER=1)")
async def test_the_bot_really_runs_on_three_masters(bot: Bot) -> None:
    redis = bot.services.redis
    assert isinstance(redis, RedisCluster)
    assert len(redis.get_primaries()) == 3
    users = [new_user_id() for _ in range(6)]
    for uid in users:
        assert await converse(bot.platform, uid, bot.platform.follow(uid))
    # the members' keys landed on more than one node: the cluster was really used
    nodes = {redis.get_node_from_key(rkeys.member(uid)).name for uid in users}
    assert len(nodes) > 1
    assert not bot.platform.violations
