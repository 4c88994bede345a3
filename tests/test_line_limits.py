"""clip(): text cut the way LINE counts it (UTF-16 code units), never inside a surrogate pair."""
from __future__ import annotations

import pytest

from bot.line.limits import TEXT_MAX, clip, text_length

SMILE = "😀"  # outside the BMP: one code point, two UTF-16 units (a surrogate pair)


@pytest.mark.parametrize("text", ["", "あいう", "a" * TEXT_MAX, "名" * 3000, "a" * 2499 + SMILE])
def test_text_within_the_limit_is_kept_as_it_is(text: str) -> None:
    assert clip(text, TEXT_MAX) == text


def test_ordinary_text_is_cut_as_a_slice_would_cut_it() -> None:
    assert clip("a" * 6000, TEXT_MAX) == "a" * TEXT_MAX
    assert clip("名" * 5001, TEXT_MAX) == "名" * TEXT_MAX
    assert clip("ポイントカード", 5, "…") == "ポイント…"


def test_emoji_count_as_two_units() -> None:
    emoji = SMILE * 3000  # 3,000 characters but 6,000 units: LINE would refuse it whole
    clipped = clip(emoji, TEXT_MAX)
    assert clipped == SMILE * 2500 and text_length(clipped) == TEXT_MAX


def test_a_cut_never_splits_a_surrogate_pair() -> None:
    text = "a" + SMILE * 5  # units: 1 + 10
    assert clip(text, 4) == "a" + SMILE  # the second emoji would straddle the limit: left out whole
    assert clip(text, 5) == "a" + SMILE * 2
    assert clip(SMILE * 2, 3, "…") == SMILE + "…"
    assert clip(SMILE * 3, 4, "…") == SMILE + "…"  # the mark counts too: 2 + 1, the next emoji does not fit


def test_the_exact_boundary() -> None:
    exact = "a" * (TEXT_MAX - 2) + SMILE
    assert text_length(exact) == TEXT_MAX and clip(exact, TEXT_MAX) == exact
    over = "a" * (TEXT_MAX - 1) + SMILE
    assert clip(over, TEXT_MAX) == "a" * (TEXT_MAX - 1)
    assert clip("abcde", 5, "…") == "abcde" and clip("abcdef", 5, "…") == "abcd…"
