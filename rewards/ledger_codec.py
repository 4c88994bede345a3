"""A ledger entry as stored, written by rewards/lua/ledger.lua (encode()): one delimited string,

    kind|rule|at|delta|avail|pend|balance|pending|state|n|<n bytes: rare fields as JSON><note>

rule is '' when it equals kind, '~' + rest when it starts with kind, '!' + rule when it would read as one of
those; at is base 36 (ms); avail is '' when it is delta - pend; pend and pending are '' when 0; state is one
letter, blank when it is the usual one (usual_state); n is the length of the rare fields' JSON (capped, reverses,
written_off, lot) or ''; the note is the rest. Blank fields at the end are left out ("event|~s.review|mxbg90oo|10|||110"). An entry starting with '[' is the older positional JSON array
`[kind, rule, at, delta, avail, pend, balance, pending, state, note, {rare}?]`, still read (see ledger.lua).

The entries live in the member's ops hash (rewards/keys.py ops) under their ids ('1', '2', …; '#n' is the last
id), beside the op ids (op -> entry id) and the caps ('#c…'); an op id that starts with '#' or a digit is stored
as '##' + op id (op_field). An earning's lot sits in front of its entry, "<lot>;<entry>" (split_entry,
parse_lot). Its '#q' is the lot queue (queued).

Reading gives back the entry as a dict with the named fields it always had: `id` is the entry's field name,
`op` comes from the ops hash (op -> entry id), `state` is spelled out, and the rare fields
appear when set.
"""
from __future__ import annotations

import json
from typing import Any, NamedTuple

FIELDS = ("kind", "rule", "at", "delta", "avail", "pend", "balance", "pending", "state", "note")
STATES = {"a": "available", "p": "pending", "d": "done"}


def _decode_json(raw: bytes | str) -> dict[str, Any]:
    row = json.loads(raw)
    entry = dict(zip(FIELDS, row, strict=False))
    if len(row) > len(FIELDS):
        entry.update(row[len(FIELDS)])
    return entry


def _rule(kind: str, short: str) -> str:
    if short == "":
        return kind
    if short[0] == "~":
        return kind + short[1:]
    return short[1:] if short[0] == "!" else short


def usual_state(delta: int, pend: int) -> str:
    """The state written blank (ledger.lua usual_state): held points pending, other points in available, else done."""
    return "p" if pend > 0 else "a" if delta > 0 else "d"


def decode(entry_id: int, raw: bytes | str, op: str | None = None) -> dict[str, Any]:
    _, data = split_entry(raw)  # an earning's lot in front is not part of the entry
    if data[:1] == b"[":
        fields = _decode_json(data)
    else:
        parts = data.split(b"|", 10)
        parts += [b""] * (11 - len(parts))  # the blank fields at the end are not written
        kind, short, at, delta, avail, pend, balance, pending, state, n = (p.decode() for p in parts[:10])
        rest = parts[10]
        pend_n, delta_n, rare_len = int(pend or 0), int(delta), int(n or 0)
        fields = {"kind": kind, "rule": _rule(kind, short), "at": int(at, 36), "delta": delta_n,
                  "avail": int(avail) if avail else delta_n - pend_n, "pend": pend_n, "balance": int(balance),
                  "pending": int(pending or 0), "state": state or usual_state(delta_n, pend_n),
                  "note": rest[rare_len:].decode()}
        if rare_len:
            fields.update(json.loads(rest[:rare_len]))
    entry: dict[str, Any] = {"id": entry_id, "op": op, **fields}
    entry["state"] = STATES.get(entry["state"], entry["state"])
    return entry


def op_field(op: str) -> str:
    """The ops hash's field for an op id (ledger.lua opf): '#' starts the lots', caps' and queue's fields and digits
    are the entries', so an op id starting with either is stored as '##' + op id."""
    return "##" + op if op[:1] == "#" or "0" <= op[:1] <= "9" else op


LAST_ID = "#n"  # the ops hash's field for the last entry id written


def entry_field(entry_id: int) -> str:
    """The ops hash's field for an entry (ledger.lua write)."""
    return str(entry_id)


class Lot(NamedTuple):
    remaining: int
    expires_at: int  # ms
    hold_until: int  # ms, 0 when spendable


DAY_MS = 86_400_000


def split_entry(raw: bytes | str) -> tuple[bytes | None, bytes]:
    """An entry field as stored: (its lot, or None when the entry has none; the entry). A lot sits in front of its
    earning's entry, "<lot>;<entry>", exactly when the field starts with a digit, '-' or '|' (ledger.lua)."""
    data = raw if isinstance(raw, bytes) else raw.encode()
    if data[:1].isdigit() or data[:1] in (b"-", b"|"):
        lot, _, entry = data.partition(b";")
        return lot, entry
    return None, data


def parse_lot(lot: bytes | str, entry: bytes | str = b"") -> Lot:
    """A lot as ledger.lua lot_text writes it: "remaining|expires" or "remaining|expires|hold_until", remaining
    blank when 0 (a spent lot is "|expires"), hold_until in base 36 (ms), expires in base 36 (ms) or "+" and the
    days after its entry's at in base 36 (then `entry` is needed)."""
    parts = (lot.decode() if isinstance(lot, bytes) else lot).split("|")
    hold = parts[2] if len(parts) > 2 else ""
    if parts[1].startswith("+"):
        expires = decode(0, entry)["at"] + int(parts[1][1:], 36) * DAY_MS
    else:
        expires = int(parts[1], 36)
    return Lot(int(parts[0] or 0), expires, int(hold or "0", 36))


def lot_of(raw: bytes | str | None) -> Lot | None:
    """The lot in an entry field as stored, or None."""
    if raw is None:
        return None
    lot, entry = split_entry(raw)
    return parse_lot(lot, entry) if lot is not None else None


QUEUE = "#q"  # the ops hash's field for the lot queue: spendable lots' ids by expiry, joined by ','


def queued(raw: bytes | str | None) -> list[int]:
    """The lot queue as stored (ledger.lua queue_get): lot ids, soonest expiry first; "first-last" is a run
    of ids that follow each other ("2,3,5-8" is 2, 3, 5, 6, 7, 8)."""
    text = raw.decode() if isinstance(raw, bytes) else raw or ""
    ids: list[int] = []
    for part in filter(None, text.split(",")):
        first, _, last = part.partition("-")
        ids.extend(range(int(first), int(last or first) + 1))
    return ids


class Ops(NamedTuple):
    """An ops hash read whole."""
    entries: dict[int, bytes]  # entry id -> the entry as stored (decode)
    op_of: dict[int, str]  # entry id -> op id
    lots: dict[int, Lot]  # lot id (= its earning's entry id) -> the lot


def split_ops(fields: dict[bytes, bytes]) -> Ops:
    out = Ops({}, {}, {})
    for field, value in fields.items():
        name = field.decode()
        if name.isascii() and name.isdigit():
            lot, entry = split_entry(value)
            out.entries[int(name)] = entry
            if lot is not None:
                out.lots[int(name)] = parse_lot(lot, entry)
        elif name.startswith("##"):
            out.op_of[int(value)] = name[2:]
        elif not name.startswith("#"):  # '#c…' is a cap, '#q' the queue, '#n' the last id
            out.op_of[int(value)] = name
    return out
