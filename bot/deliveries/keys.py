"""The delivery engine's Redis keys. All of them share one hash tag, {dlv}, so every Lua step (enqueue, claim,
settle) is one cluster slot. Deliveries are few next to LINE events (a webhook forwarded, a domain outcome
emitted), so one slot is plenty; the intake's partitions stay the hot path."""
from rewards.keys import PREFIX

TAG = "{dlv}"
DUE = f"{PREFIX}:dlv:{TAG}:due"  # zset: delivery id -> when its next attempt is due (ms); a claim pushes it on
ENDPOINTS = f"{PREFIX}:dlv:{TAG}:endpoints"  # hash: outbound webhook endpoint id -> its registration (JSON)
HEALTH = f"{PREFIX}:dlv:{TAG}:health"  # hash: "<endpoint>:failing_since" (ms), "<endpoint>:disabled" (JSON)


def delivery(delivery_id: str) -> str:
    # hash: url, body (the exact bytes), headers (JSON), owner, type, created, status, attempts, next, claim
    return f"{PREFIX}:dlv:{TAG}:d:{delivery_id}"


def attempts(delivery_id: str) -> str:
    return f"{PREFIX}:dlv:{TAG}:d:{delivery_id}:log"  # list: one JSON line per attempt


def owned_by(owner: str) -> str:
    return f"{PREFIX}:dlv:{TAG}:by:{owner}"  # zset: the owner's delivery ids by creation (ms), newest kept
