"""The stored ledger entry (ledger.lua encode/decode, rewards/ledger_codec.py): both sides read every
shape back whole, odd ones included, and entries written in the older JSON form still read."""
import json
from typing import Any

import pytest

from rewards import keys, ledger_codec
from rewards.engine import Award
from rewards.part import LEDGER_PRELUDE
from rewards.scripts import source
from tests.test_rules_engine import make, new_member  # noqa: F401 (make is a fixture)

AT = 1795342805821

ODD: list[dict[str, Any]] = [
    {"kind": "event", "rule": "events.review", "note": ""},
    {"kind": "signup", "rule": "signup", "note": "ようこそ | welcome"},  # a bar and Japanese in the note
    {"kind": "claim", "rule": "coffee", "note": "", "state": "done", "delta": -50, "avail": -50},
    {"kind": "adjustment", "rule": "~tilde", "note": "[not json"},  # reads like the kind shorthand
    {"kind": "adjustment", "rule": "!bang", "note": ""},
    {"kind": "x", "rule": "", "note": "empty rule"},
    {"kind": "refund", "rule": "refund", "note": "o1", "reverses": "order:a|b", "written_off": 3},
    {"kind": "event", "rule": "events.share", "note": "", "capped": 120, "delta": 0, "avail": 0},
    {"kind": "release", "rule": "hold", "note": "", "lot": 12, "delta": 0, "avail": 40, "pend": -40},
    {"kind": "a|b", "rule": "c", "note": ""},  # not representable: falls back to the JSON form
    {"kind": "event", "rule": "events.review", "note": "", "pend": 25, "avail": 0, "state": "pending"},
    # states other than the usual one for their numbers are written out
    {"kind": "event", "rule": "events.review", "note": "", "capped": 5, "delta": 0, "avail": 0, "state": "pending"},
    {"kind": "adjustment", "rule": "staff:a", "note": "", "state": "done"},
    {"kind": "adjustment", "rule": "staff:a", "note": "", "state": "odd"},
    # blank fields at the end are left out: every mix of blank and set ones before the note reads back
    {"kind": "event", "rule": "events.review", "note": "", "pending": 25},
    {"kind": "event", "rule": "events.review", "note": "", "balance": 0},
    {"kind": "claim", "rule": "coffee", "note": "", "delta": -5, "avail": -5, "state": "done", "balance": -5},
    {"kind": "adjustment", "rule": "staff:a", "note": "|"},  # a note of bars is not cut
    {"kind": "adjustment", "rule": "staff:a", "note": "ends with ||"},
    {"kind": "adjustment", "rule": "staff:a", "note": "0"},
    {"kind": "event", "rule": "events.review", "note": "", "pending": 25, "state": "odd"},
]


@pytest.mark.parametrize(("given", "written"), [
    ({}, b""), ({"state": "done"}, b"d"), ({"delta": -5, "avail": -5, "state": "done"}, b""),
    ({"delta": 5, "avail": 0, "pend": 5, "state": "pending"}, b""), ({"delta": 0, "avail": 0}, b"a"),
])
async def test_the_usual_state_is_left_blank(make, given: dict, written: bytes) -> None:  # noqa: F811
    program, _ = await make()
    want = entry(kind="event", rule="events.review", note="", **given)
    raw, _ = await program.redis.eval(source(LEDGER_PRELUDE) + ROUND_TRIP, 0, json.dumps(want))
    assert (raw.split(b"|") + [b""] * 10)[8] == written
    assert ledger_codec.decode(7, raw, "op:7") == {**want, "id": 7, "op": "op:7"}


def entry(**given: Any) -> dict[str, Any]:
    e = {"at": AT, "delta": 40, "avail": 40, "pend": 0, "balance": 140, "pending": 0, "state": "available"}
    return {**e, **given}


ROUND_TRIP = """
local e = cjson.decode(ARGV[1])
local raw = encode(e)
return {raw, cjson.encode(decode(7, 'op:7', raw))}
"""


@pytest.mark.parametrize("given", ODD, ids=lambda g: f"{g['kind']}/{g['rule']}")
async def test_an_entry_reads_back_whole_in_lua_and_python(make, given: dict) -> None:  # noqa: F811
    program, _ = await make()
    want = entry(**given)
    raw, from_lua = await program.redis.eval(source(LEDGER_PRELUDE) + ROUND_TRIP, 0, json.dumps(want))
    assert len(raw) < len(json.dumps(list(want.values()))) or b"a|b" in raw  # smaller than the JSON it replaced
    expected = {**want, "id": 7, "op": "op:7"}
    assert ledger_codec.decode(7, raw, "op:7") == expected
    assert json.loads(from_lua) == expected


async def test_an_entry_written_as_json_before_still_reads_and_reverses(make) -> None:  # noqa: F811
    program, clock = await make()
    uid = await new_member(program, clock)
    purchase = await program.record_purchase("order-1", uid, 3000, at_ms=clock.ms)
    [earned] = purchase.answer["ops"]
    e = (await program.ledger(uid))[-1]
    # rewrite it as the previous format wrote it
    old = json.dumps([e["kind"], e["rule"], e["at"], e["delta"], e["avail"], 0, e["balance"], 0, "a", "thanks"])
    field = ledger_codec.entry_field(e["id"])
    lot, _ = ledger_codec.split_entry(await program.redis.hget(keys.ops(uid), field))
    assert lot is not None
    await program.redis.hset(keys.ops(uid), field, lot + b";" + old.encode())  # its lot stays in front
    again = (await program.ledger(uid))[-1]
    assert again == {**e, "note": "thanks"} and again["op"] == earned
    assert (await program.refund("order-1"))[0] == "OK"  # the script reads the old entry to reverse it
    last = (await program.ledger(uid))[-1]
    assert last["kind"] == "refund" and last["reverses"] == earned and last["delta"] == -e["delta"]


async def test_op_ids_that_look_like_lots_or_caps_stay_apart(make) -> None:  # noqa: F811
    """The ops hash also holds the entries ('<id>'), the lots ('#<id>') and caps ('#c…'): op ids starting with '#'
    or a digit must not meet them."""
    program, clock = await make()
    uid = await new_member(program, clock)
    for op in ("#1", "#c", "##x", "1", "2x", "#n", "#q"):
        assert (await program.apply(uid, op, 10, "event", "events.review", clock.ms))[0] == 1
        assert (await program.apply(uid, op, 10, "event", "events.review", clock.ms))[0] == 0  # a replay
    entries = await program.ledger(uid)
    assert [e["op"] for e in entries] == ["#1", "#c", "##x", "1", "2x", "#n", "#q"]
    assert all(e["expires_at"] > clock.ms for e in entries)  # every lot found under its own field
    assert (await program.spend(uid, "#2", 35, "coffee"))[0] == 1
    assert (await program.member(uid)).points == 70 - 35
    fields = {f.decode() for f in await program.redis.hkeys(keys.ops(uid))}
    assert {"###1", "###c", "####x", "##1", "##2x", "###n", "###q", "###2"} <= fields  # the op ids, escaped
    assert {str(i) for i in range(1, 9)} | {"#n", "#q"} <= fields
    assert not {f"#{i}" for i in range(1, 9)} & fields  # each lot sits in its entry's field
    assert (await program.ledger(uid))[-1]["op"] == "#2"


@pytest.mark.parametrize(("raw", "lot"), [
    ("10|mwror2eq", (10, int("mwror2eq", 36), 0)),
    ("|mwror2eq", (0, int("mwror2eq", 36), 0)),  # spent: kept only for ledger()'s expires_at
    ("25|mwror2eq|mwq0", (25, int("mwror2eq", 36), int("mwq0", 36))),  # on hold
    ("0|mwror2eq|0", (0, int("mwror2eq", 36), 0)),  # the longer form
    ("10|+a5", (10, int("mxbhh3yv", 36) + 365 * 86_400_000, 0)),  # 365 days after the entry's at
    ("|+a6|mxbhh3yw", (0, int("mxbhh3yv", 36) + 366 * 86_400_000, int("mxbhh3yw", 36))),
])
def test_lots_read_back(raw: str, lot: tuple[int, int, int]) -> None:
    entry = "event|~s.review|mxbhh3yv|10|||110"
    assert ledger_codec.parse_lot(raw, entry) == lot
    assert ledger_codec.split_entry(f"{raw};{entry}") == (raw.encode(), entry.encode())
    assert ledger_codec.lot_of(f"{raw};{entry}") == lot
    assert ledger_codec.lot_of(entry) is None and ledger_codec.split_entry(entry) == (None, entry.encode())


async def test_a_lot_sits_in_front_of_its_entry_with_its_expiry_in_days(make) -> None:  # noqa: F811
    """An earning's field is "<lot>;<entry>"; a whole number of days after the entry's at is written "+<days>"
    (base 36), any other expiry in full; both sides read both, and an odd kind never reads as a lot."""
    program, clock = await make()
    uid = await new_member(program, clock)
    await program.points_ledger.earn(uid, Award(op="d", rule="events.review", kind="event", amount=5, at_ms=clock.ms,
                                              note="", expires_ms=clock.ms + 365 * 86_400_000))
    await program.points_ledger.earn(uid, Award(op="o", rule="events.review", kind="event", amount=6, at_ms=clock.ms,
                                              note="", expires_ms=clock.ms + 86_400_000 + 7))
    await program.points_ledger.earn(uid, Award(op="k", rule="x", kind="7up|-", amount=7, at_ms=clock.ms,
                                              note="", expires_ms=clock.ms + 2 * 86_400_000))
    entries = {e["op"]: e for e in await program.ledger(uid)}
    raw = {op: await program.redis.hget(keys.ops(uid), ledger_codec.entry_field(entries[op]["id"]))
           for op in ("d", "o", "k")}
    assert raw["d"].startswith(b"5|+a5;event|")
    assert raw["o"].startswith(b"6|" + ledger_codec_base36(clock.ms + 86_400_000 + 7).encode() + b";event|")
    assert raw["k"].startswith(b"7|") and b";[" in raw["k"]  # a kind starting with a digit: the JSON form
    assert entries["d"]["expires_at"] == clock.ms + 365 * 86_400_000
    assert entries["o"]["expires_at"] == clock.ms + 86_400_000 + 7
    assert entries["k"]["kind"] == "7up|-" and entries["k"]["expires_at"] == clock.ms + 2 * 86_400_000
    queue = await program.points_ledger.queued_lots(uid)
    assert [lot.remaining for lot in queue][:2] == [6, 7] and 5 in [lot.remaining for lot in queue]
    assert (await program.spend(uid, "s", (await program.member(uid)).points, "coffee"))[0] == 1
    assert await program.redis.hget(keys.ops(uid), ledger_codec.entry_field(entries["d"]["id"])) == b"|+a5;" + \
        raw["d"].split(b";", 1)[1]  # spent: the lot keeps its expiry, the entry is untouched


def ledger_codec_base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, d = divmod(n, 36)
        out = digits[d] + out
    return out or "0"


async def test_a_spent_lot_keeps_only_its_expiry_and_ledger_shows_it(make) -> None:  # noqa: F811
    program, clock = await make()
    uid = await new_member(program, clock)
    before = await program.ledger(uid)
    assert (await program.apply(uid, "e1", 30, "event", "events.review", clock.ms))[0] == 1
    assert (await program.spend(uid, "s1", (await program.member(uid)).points, "coffee"))[0] == 1
    earned = next(e for e in await program.ledger(uid) if e["op"] == "e1")
    raw, entry = ledger_codec.split_entry(await program.redis.hget(keys.ops(uid), ledger_codec.entry_field(earned["id"])))
    assert raw is not None and raw.startswith(b"|") and b"|" not in raw[1:]  # "|expires": nothing left, not on hold
    assert earned["expires_at"] == ledger_codec.parse_lot(raw, entry).expires_at > clock.ms
    assert len(await program.ledger(uid)) == len(before) + 2


async def queue_of(program: Any, uid: str) -> list[tuple[int, ledger_codec.Lot]]:
    """The lot queue with each lot, checked against the lots: exactly the spendable ones with points left,
    soonest expiry first (a tie by lot id)."""
    raw = await program.redis.hget(keys.ops(uid), ledger_codec.QUEUE)
    parsed = ledger_codec.split_ops(await program.redis.hgetall(keys.ops(uid))).lots
    queue = [(i, parsed[i]) for i in ledger_codec.queued(raw)]
    assert queue == sorted(queue, key=lambda q: (q[1].expires_at, q[0]))
    assert {i for i, _ in queue} == {i for i, lot in parsed.items() if lot.remaining > 0 and not lot.hold_until}
    return queue


async def test_the_lot_queue_lives_in_the_ops_hash_and_keeps_expiry_order(make) -> None:  # noqa: F811
    """Spending and expiry go soonest expiry first, whatever order the lots were earned in; a held lot joins
    the queue when released; the member's place in the due zset follows the queue's first lot."""
    from rewards.engine import Award

    program, clock = await make()
    uid = await new_member(program, clock)
    day = 86_400_000
    t0 = clock.ms
    for op, amount, expires, hold in [("late", 10, t0 + 300 * day, 0), ("soon", 20, t0 + 100 * day, 0),
                                      ("never", 30, 0, 0), ("soon-too", 40, t0 + 100 * day, 0),
                                      ("held", 50, t0 + 50 * day, t0 + 5 * day)]:
        award = Award(op=op, rule="events.review", kind="event", amount=amount, at_ms=t0, expires_ms=expires,
                      hold_until_ms=hold)
        assert (await program.earn(uid, award))[0] == 1
    ids = {e["op"]: e["id"] for e in await program.ledger(uid)}
    queue = [i for i, _ in await queue_of(program, uid)]
    assert [q for q in queue if q in ids.values()] == [ids["soon"], ids["soon-too"], ids["late"], ids["never"]]
    assert not [n async for n in program.redis.scan_iter(match=f"*{uid}*lotq*")]  # no zset of its own

    clock.advance(days=6)
    assert (await program.maintain(uid))[0] == 50  # released: now the soonest to expire
    queue = await queue_of(program, uid)
    assert queue[0][0] == ids["held"]
    assert await program.redis.zscore(keys.due(uid), uid) == queue[0][1].expires_at

    before = (await program.member(uid)).points
    assert (await program.spend(uid, "claim", 60, "coffee"))[0] == 1  # 50 from "held", 10 from the next
    lots = dict(await queue_of(program, uid))
    assert ids["held"] not in lots and (await program.member(uid)).points == before - 60

    clock.advance(days=90)  # the two lots expiring on day 100 are within the warning window, together
    assert await program.expiring(uid) == (10 + 40, t0 + 100 * day)
    await program.maintain(uid)  # the clock job puts the member at the queue's first lot in the due zset
    assert await program.redis.zscore(keys.due(uid), uid) == t0 + 100 * day
    assert (uid, 10 + 40, t0 + 100 * day) in await program.expiring_soon()
    clock.advance(days=10)
    await program.maintain(uid)
    expired = [e for e in await program.ledger(uid) if e["kind"] == "expire"]
    assert [e["lot"] for e in expired if e["lot"] in (ids["soon"], ids["soon-too"])] == [ids["soon"],
                                                                                         ids["soon-too"]]
    assert sum(-e["delta"] for e in expired if e["lot"] in (ids["soon"], ids["soon-too"])) == 20 + 40 - 10
    queue = await queue_of(program, uid)
    assert [i for i, _ in queue if i in ids.values()] == [ids["late"], ids["never"]]
    assert await program.redis.zscore(keys.due(uid), uid) == queue[0][1].expires_at

    clock.advance(days=1000)
    await program.maintain(uid)
    assert [i for i, _ in await queue_of(program, uid)] == [ids["never"]]
    assert (await program.member(uid)).points == 30
    assert await program.redis.zscore(keys.due(uid), uid) is None  # nothing left that changes by itself


async def test_entry_ids_come_from_the_list_length_not_a_counter(make) -> None:  # noqa: F811
    program, clock = await make()
    uid = await new_member(program, clock)
    for n in range(3):
        assert (await program.apply(uid, f"e{n}", 10, "event", "events.review", clock.ms))[0] == 1
    assert (await program.spend(uid, "s", 15, "coffee"))[0] == 1
    entries = await program.ledger(uid)
    assert [e["id"] for e in entries] == list(range(1, len(entries) + 1))
    ids = {e["op"]: e["id"] for e in entries}
    stored = ledger_codec.split_ops(await program.redis.hgetall(keys.ops(uid)))
    assert {ids[f"e{n}"] for n in range(3)} <= set(stored.lots)  # each earning's lot in its entry's field
    assert await program.redis.hget(keys.member(uid), "ledger_seq") is None


@pytest.mark.parametrize(("raw", "ids"), [
    (None, []), ("", []), ("7", [7]), ("2,3", [2, 3]), ("2,3,5-8,12", [2, 3, 5, 6, 7, 8, 12]),
    ("10-12,4", [10, 11, 12, 4]),  # a later lot can expire first
])
def test_the_lot_queue_reads_back(raw: str | None, ids: list[int]) -> None:
    assert ledger_codec.queued(raw) == ids


async def test_a_long_lot_queue_is_stored_as_runs_and_keeps_the_ops_hash_compact(make) -> None:  # noqa: F811
    """200 spendable lots in a row (602 fields: entries, ops, lots): one run, so the ops hash stays a listpack,
    which a value over hash-max-listpack-value (512 bytes) would end ("1,2,…,200" is 692 bytes)."""
    program, clock = await make()
    uid = await new_member(program, clock)
    for n in range(200):
        assert (await program.adjust(uid, 5, "r", "test", f"a{n}"))[0]
    raw = await program.redis.hget(keys.ops(uid), ledger_codec.QUEUE)
    assert raw == b"1-200" and len(await queue_of(program, uid)) == 200
    assert await program.redis.object("encoding", keys.ops(uid)) in (b"ziplist", b"listpack")
    before = (await program.member(uid)).points
    assert (await program.spend(uid, "s", 5 * 40 + 3, "coffee"))[0] == 1  # lots empty from the front
    assert (await program.member(uid)).points == before - 203
    assert await program.redis.hget(keys.ops(uid), ledger_codec.QUEUE) == b"41-200"  # the 41st lot gave 3
    assert [i for i, _ in await queue_of(program, uid)] == list(range(41, 201))
