"""Typed postback data: round trips, LINE's length limit, and refusal of anything edited."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.chat.postback import PostbackData, TamperedData, key_for
from bot.line.limits import POSTBACK_DATA_MAX

KEY = key_for("secret")


@dataclass(frozen=True)
class Sample(PostbackData):
    prefix = "t.sample"
    name: str
    count: int
    on: bool


def test_round_trip_and_other_prefixes_are_not_ours() -> None:
    data = Sample("coffee", 3, True)
    packed = data.pack(KEY)
    assert Sample.unpack(KEY, packed) == data
    assert Sample.unpack(KEY, "rw.show|x|abc") is None
    assert len(packed) <= POSTBACK_DATA_MAX


def test_too_long_or_separator_in_a_field_is_refused_when_packing() -> None:
    with pytest.raises(ValueError, match="300"):
        Sample("x" * 300, 1, False).pack(KEY)
    with pytest.raises(ValueError, match="may not contain"):
        Sample("a|b", 1, False).pack(KEY)


@given(st.text(max_size=40))
def test_anything_else_with_our_prefix_is_tampered(garbage: str) -> None:
    data = "t.sample|" + garbage
    try:
        Sample.unpack(KEY, data)
    except TamperedData:
        return
    raise AssertionError(f"accepted {data!r}")


def test_a_wrong_field_type_under_a_valid_mac_is_still_refused() -> None:
    @dataclass(frozen=True)
    class Loose(PostbackData):
        prefix = "t.sample"
        name: str
        count: str
        on: str

    packed = Loose("coffee", "three", "1").pack(KEY)
    with pytest.raises(TamperedData):
        Sample.unpack(KEY, packed)
