"""Forgiving keyword matching: what a member types, folded so that width, case, kana, spacing, long vowel
marks, trailing punctuation and polite endings do not matter, and one typo in a longer Latin word is forgiven.

The words themselves are data, in assets/words.toml (one list per intent), so adding a variant is a one-line
edit. Each handler's filter is `keyword("points")` and so on.
"""
from __future__ import annotations

import functools
import re
import tomllib
import unicodedata
from pathlib import Path

from bot.config import ASSETS

MAX_MATCH_CHARS = 500  # longer texts are cut before matching: nobody types a keyword after 500 characters
TYPO_MIN_LENGTH = 5  # one typo is forgiven only in Latin words this long ("invte", "rewrds"), never in "pt"

_HIRAGANA = re.compile("[\u3041-\u3096]")
_SPACE_AND_LONG_VOWEL = re.compile(r"[\s\u30fc\u301c\uff5e~\-_・]+")
_EDGE_PUNCTUATION = "!！?？。.、,，…♪☆★"
# polite endings people add to a keyword, after kana folding: ポイントください, ポイントを見せて, points please
_ENDINGS = re.compile(r"(?:ヲ|ハ)?(?:クダサイ|下サイ|オシエテ|教エテ|ミセテ|見セテ|ミタイ|見タイ|オネガイ|"
                      r"オ願イ|シタイ|スル|please|pls|plz)+$")
_LATIN = re.compile(r"[a-z ]+")


def fold(text: str) -> str:
    """The form both the table and the typed text are compared in."""
    text = unicodedata.normalize("NFKC", text[:MAX_MATCH_CHARS]).casefold()
    text = _HIRAGANA.sub(lambda m: chr(ord(m.group()) + 0x60), text)
    text = _SPACE_AND_LONG_VOWEL.sub("", text)
    bare = text.strip(_EDGE_PUNCTUATION)
    if not bare:  # "?" alone is a word in its own right
        return text
    return _ENDINGS.sub("", bare) or bare


def _one_edit_apart(a: str, b: str) -> bool:
    """At most one insertion, deletion, substitution or swap of neighbours (Damerau, restricted)."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return a == b
    if len(a) == len(b):
        diffs = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diffs) == 1 or (len(diffs) == 2 and diffs[1] == diffs[0] + 1
                                   and a[diffs[0]] == b[diffs[1]] and a[diffs[1]] == b[diffs[0]])
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1:] == short for i in range(len(long)))


class WordTable:
    """Intent -> folded words; a word folded the same way under two intents is a mistake in the table."""

    def __init__(self, path: Path):
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        self.words: dict[str, frozenset[str]] = {}
        owner: dict[str, str] = {}
        for intent, choices in raw.items():
            if not isinstance(choices, list) or not all(isinstance(c, str) and c.strip() for c in choices):
                raise ValueError(f"{path.name}: {intent} must be a list of words")
            folded = frozenset(fold(c) for c in choices)
            for word in folded:
                if owner.setdefault(word, intent) != intent:
                    raise ValueError(f"{path.name}: {word!r} is a word of both {owner[word]} and {intent}")
            self.words[intent] = folded
        # every keyword route asks about the same text in turn (bot/chat/router.py): fold and scan it once
        self._cached_intent = functools.lru_cache(maxsize=1024)(self._intent_of)

    def intent_of(self, text: str) -> str | None:
        """The intent a typed text names, or None. An exact (folded) match first, then one forgiven typo
        when exactly one intent is that close."""
        return self._cached_intent(text)

    def _intent_of(self, text: str) -> str | None:
        typed = fold(text)
        for intent, words in self.words.items():
            if typed in words:
                return intent
        if len(typed) < TYPO_MIN_LENGTH - 1 or not _LATIN.fullmatch(typed):
            return None
        close = {intent for intent, words in self.words.items()
                 for word in words if len(word) >= TYPO_MIN_LENGTH and _one_edit_apart(typed, word)}
        return close.pop() if len(close) == 1 else None

    def means(self, text: str, intent: str) -> bool:
        if intent not in self.words:
            raise KeyError(f"no intent {intent!r} in the word table")
        return self.intent_of(text) == intent


@functools.lru_cache(maxsize=1)
def table() -> WordTable:
    """The shipped table, read once (the first time a filter runs, or at start-up through build_router)."""
    return WordTable(ASSETS / "words.toml")


def is_emoji_only(text: str, line_emoji_spans: list[tuple[int, int]] | None = None) -> bool:
    """Only emoji (Unicode ones, or LINE emoji placeholders at the given (index, length) spans) and spaces."""
    chars = list(text[:MAX_MATCH_CHARS])
    for index, length in line_emoji_spans or []:
        chars[index:index + length] = [" "] * len(chars[index:index + length])
    rest = [c for c in chars if not c.isspace()]
    return bool(text.strip()) and all(_is_emoji_part(c) for c in rest)


def _is_emoji_part(char: str) -> bool:
    if char in "\u200d\ufe0f\ufe0e\u20e3":  # joiner, variation selectors, keycap
        return True
    if "\U0001f1e6" <= char <= "\U0001f1ff" or "\U0001f3fb" <= char <= "\U0001f3ff":  # flags, skin tones
        return True
    return unicodedata.category(char) == "So"  # "Symbol, other": where emoji live
