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


def sent(event_id: str, n: int) -> str:
    return f"{PREFIX}:sent:{event_id}:{n}"  # the n-th message of an event's answer went out


CLOCK_LEASE = f"{PREFIX}:clock:lease"  # the worker that runs the clock work (expiry, holds, birthdays)
BROADCAST_QUEUE = f"{PREFIX}:broadcasts:queue"  # list of broadcast ids waiting or running


def broadcast(job_id: str) -> str:
    return f"{PREFIX}:broadcast:{{{job_id}}}"  # hash: status, messages, total, sent, next_batch


def broadcast_recipients(job_id: str) -> str:
    return f"{PREFIX}:broadcast:{{{job_id}}}:to"  # list: the recipients, fixed when the job starts


def broadcast_lease(job_id: str) -> str:
    return f"{PREFIX}:broadcast:{{{job_id}}}:lease"
