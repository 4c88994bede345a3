"""A ledger entry as stored: a JSON array in a fixed order, written by rewards/lua/ledger.lua (encode()).

    [op, kind, rule, at, delta, avail, pend, balance, pending, state, note, {rare fields}?]

Reading gives back the entry as a dict with the named fields it always had: `id` is the entry's position
plus one, `state` is spelled out, the rare fields (capped, reverses, written_off, lot) appear when set.
"""
from __future__ import annotations

import json
from typing import Any

FIELDS = ("op", "kind", "rule", "at", "delta", "avail", "pend", "balance", "pending", "state", "note")
STATES = {"a": "available", "p": "pending", "d": "done"}


def decode(entry_id: int, raw: bytes | str) -> dict[str, Any]:
    row = json.loads(raw)
    entry: dict[str, Any] = {"id": entry_id, **dict(zip(FIELDS, row, strict=False))}
    entry["state"] = STATES.get(entry["state"], entry["state"])
    if len(row) > len(FIELDS):
        entry.update(row[len(FIELDS)])
    return entry
