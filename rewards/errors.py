"""The domain's one error base: a refusal with a stable `code` (what the admin API answers and the locale
texts are keyed on) and a `message` for people.

ProgramError (members, points, referrals, orders, the catalog), SegmentError and RulesError derive from it.
"""
from __future__ import annotations


class DomainError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class ProgramError(DomainError):
    """A request the program refuses; `code` is stable, `message` is for people."""
