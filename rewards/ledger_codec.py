"""A ledger entry as stored: a JSON array in a fixed order, written by rewards/lua/ledger.lua (encode()).

    [kind, rule, at, delta, avail, pend, balance, pending, state, note, {rare fields}?]

Reading gives back the entry as a dict with the named fields it always had: `id` is the entry's position
plus one, `op` comes from the ops hash (op -> entry id), `state` is spelled out, and the rare fields
(capped, reverses, written_off, lot) appear when set.
"""
from __future__ import annotations

import json
from typing import Any

FIELDS = ("kind", "rule", "at", "delta", "avail", "pend", "balance", "pending", "state", "note")
STATES = {"a": "available", "p": "pending", "d": "done"}


def decode(entry_id: int, raw: bytes | str, op: str | None = None) -> dict[str, Any]:
    row = json.loads(raw)
    entry: dict[str, Any] = {"id": entry_id, "op": op, **dict(zip(FIELDS, row, strict=False))}
    entry["state"] = STATES.get(entry["state"], entry["state"])
    if len(row) > len(FIELDS):
        entry.update(row[len(FIELDS)])
    return entry
