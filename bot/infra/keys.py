"""Every Redis key of the plumbing (event intake, worker leases, sent markers), in one place.

Domain keys live in rewards/keys.py. Each intake partition's keys share one hash tag {pN}.
"""
from rewards.keys import PREFIX

GROUP = "workers"  # the consumer group every worker joins


def stream(partition: int) -> str:
    return f"{PREFIX}:events:{{p{partition}}}"


def seen(partition: int, event_id: str) -> str:
    return f"{PREFIX}:events:{{p{partition}}}:seen:{event_id}"  # intake dedupe, expires


def lease(partition: int) -> str:
    return f"{PREFIX}:events:{{p{partition}}}:lease"  # which worker owns the partition now


def attempts(partition: int) -> str:
    return f"{PREFIX}:events:{{p{partition}}}:attempts"  # hash: event id -> failed handling attempts


def dead(partition: int) -> str:
    return f"{PREFIX}:events:{{p{partition}}}:dead"  # stream: events that failed too often


def sent(partition: int, event_id: str, n: int) -> str:
    # the n-th message of an event's answer went out; in the partition's slot, so finish.lua can write it
    # "done" in the same atomic step as it acknowledges the event
    return f"{PREFIX}:events:{{p{partition}}}:sent:{event_id}:{n}"


WORKERS = f"{PREFIX}:workers"  # zset: live worker name -> last heartbeat (ms), for sharing the partitions
CLOCK_LEASE = f"{PREFIX}:clock:lease"  # the worker that runs the clock work (expiry, holds, birthdays)
BROADCAST_QUEUE = f"{PREFIX}:broadcasts:queue"  # zset: job id -> when it is due (ms); queued, scheduled, retrying
BROADCASTS = f"{PREFIX}:broadcasts"  # zset: every job id -> its number (BROADCAST_SEQ), for the newest-first list
BROADCAST_SEQ = f"{PREFIX}:broadcasts:seq"  # counter numbering jobs (two created in one millisecond keep order)


def broadcast(job_id: str) -> str:
    return f"{PREFIX}:broadcast:{{{job_id}}}"  # hash: status, spec, segment, counts, next_batch, times, reason


def broadcast_batches(job_id: str) -> str:
    return f"{PREFIX}:broadcast:{{{job_id}}}:batches"  # list of {"v": variant, "to": [...]}, fixed at start


def broadcast_variants(job_id: str) -> str:
    return f"{PREFIX}:broadcast:{{{job_id}}}:variants"  # hash: variant -> the rendered messages (JSON)


def broadcast_retry_keys(job_id: str) -> str:
    return f"{PREFIX}:broadcast:{{{job_id}}}:keys"  # hash: batch -> X-Line-Retry-Key, written before it is sent


def broadcast_lease(job_id: str) -> str:
    return f"{PREFIX}:broadcast:{{{job_id}}}:lease"  # the worker running the job now


def conversation_step(user_id: str) -> str:
    # hash: the one step a user's chat is waiting on (a member's nickname, a staff draft) and its data, expiring
    return f"{PREFIX}:conv:{{{user_id}}}:step"


# Deferred notices (bot/notices.py): one hash tag, so the due zset and the bodies change together.
NOTICES_DUE = f"{PREFIX}:notices:{{n}}:due"  # zset: notice id (its retry key) -> when it may be sent (ms)
NOTICES_BODY = f"{PREFIX}:notices:{{n}}:body"  # hash: notice id -> {"to", "messages", "kind"} (JSON)


STAFF = f"{PREFIX}:staff"  # set: staff user ids added through the admin API (STAFF_USER_IDS come from config)


# rich menus (bot/richmenu/): LINE keeps the menus; we keep their ids and LINE's hourly limits
RICHMENU_IDS = f"{PREFIX}:richmenu:ids"  # hash: menu alias → the rich menu id it points at now
RICHMENU_STAFF_LINKED = f"{PREFIX}:richmenu:staff"  # set: users linked to the staff menu (relinked on change)
RICHMENU_LOCK = f"{PREFIX}:richmenu:lock"  # one `python -m bot richmenu` at a time


def richmenu_calls(endpoint: str) -> str:
    return f"{PREFIX}:richmenu:calls:{endpoint}"  # zset: calls to a 100/hour endpoint in the last hour


def worker_name(name: str) -> str:
    return f"{PREFIX}:workers:lease:{name}"  # the name's lease: which process instance ("pid:token") goes by it now


# CSV imports (bot/web/api/imports.py): one hash tag per import, so its keys change together in one MULTI
def import_job(import_id: str) -> str:
    return f"{PREFIX}:import:{{{import_id}}}"  # hash: kind, status, lines_read, imported, skipped, errors_total, times


def import_errors(import_id: str) -> str:
    return f"{PREFIX}:import:{{{import_id}}}:errors"  # list: the first row errors ({"line", "code"} JSON)


def import_seen(import_id: str) -> str:
    return f"{PREFIX}:import:{{{import_id}}}:seen"  # set: "u:<user>", "c:<customer>", "o:<order>" claimed in the file
