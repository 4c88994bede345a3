"""Flex cards from JSON templates in assets/flex/ (one template for every locale).

A template is ordinary Flex JSON with two kinds of placeholder in its strings:
- `[[key]]` — a locale text (assets/locales/*.flex.toml), formatted with the card's values;
- `{{name}}` — a value. A string that is exactly `{{name}}` becomes the value itself (a number, a list of
  components spliced into the surrounding list, a dict; None drops the element or the key), otherwise
  the value is written into the string.

Values go into the parsed tree, never into JSON text, so a nickname with quotes, braces or newlines stays
data. Texts from people (reward names, nicknames) are cut with `cut()`, as LINE counts (see bot.line.limits).
"""
from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import Any

from bot.config import ASSETS
from bot.line.limits import BUBBLE_MAX_BYTES, CAROUSEL_MAX_BUBBLES, CAROUSEL_MAX_BYTES, clip

FLEX_DIR = ASSETS / "flex"
ALT_TEXT_CAP = 400  # ours: LINE allows limits.ALT_TEXT_MAX (1,500); notifications and the chat list show far less

_TEXT_KEY = re.compile(r"\[\[([a-z0-9_]+)\]\]")
_VALUE = re.compile(r"\{\{([a-z0-9_]+)\}\}")
_ANY = re.compile(_TEXT_KEY.pattern + "|" + _VALUE.pattern)
_DROP = object()


class CardError(ValueError):
    """A template or its values do not make a valid card (a bug, caught by the tests)."""


def cut(value: str, limit: int) -> str:
    """At most `limit` characters as LINE counts them, on one line, with an ellipsis when cut."""
    return clip(" ".join(str(value).split()), limit, "…")


@functools.cache
def _load(name: str) -> Any:
    return json.loads((FLEX_DIR / f"{name}.json").read_text(encoding="utf-8"))


def template_names() -> list[str]:
    return sorted(p.stem for p in FLEX_DIR.glob("*.json"))


def text_keys(name: str) -> set[str]:
    """Every locale key a template uses (a test checks each exists in every locale)."""
    return set(_TEXT_KEY.findall(json.dumps(_load(name), ensure_ascii=False)))


def render(name: str, t: Callable[..., str], /, **values: Any) -> dict[str, Any]:
    """The template filled: `t(key, **values)` gives locale texts."""
    try:  # the plan builds new dicts and lists all the way down, so the cached template is never changed
        return dict(_plan_of(name)(values, t))
    except KeyError as missing:
        raise CardError(f"flex template {name}: no value for {missing}") from missing


# A template's plan: for each node, once, whether it holds a placeholder, so that filling a card walks only
# what can change. A string without one, a number, a boolean or null is kept as it is (immutable, shared by
# every card); a dict or list of only such things is copied in one step. The walk this replaced looked at
# every node of the template for every card: 10 % of the worker's CPU in the webhook benchmark.
Fill = Callable[[dict[str, Any], Callable[..., str]], Any]


_PLANS: dict[str, tuple[Any, Fill]] = {}  # name -> (the loaded template, its plan)


def _plan_of(name: str) -> Fill:
    template = _load(name)
    known = _PLANS.get(name)
    if known is None or known[0] is not template:  # made again when _load's cache was cleared (tests)
        fixed, plan = _plan(template)
        known = _PLANS[name] = (template, (lambda values, t: plan) if fixed else plan)
    return known[1]


def _plan(node: Any) -> tuple[bool, Any]:
    """(True, node) when the node is immutable and has no placeholder; else (False, fill), fill(values, t)
    giving the node filled: a new copy of it, a value, or _DROP."""
    if isinstance(node, str):
        if "[[" not in node and "{{" not in node:  # most of a template's strings (types, colours, sizes)
            return True, node
        whole = _VALUE.fullmatch(node)
        if whole:
            key = whole.group(1)

            def value(values: dict[str, Any], t: Callable[..., str]) -> Any:
                found = values[key]
                return _DROP if found is None else found
            return False, value

        def text(values: dict[str, Any], t: Callable[..., str]) -> str:
            # one pass, so a value that looks like a placeholder is never filled again
            return _ANY.sub(lambda m: t(m.group(1), **values) if m.group(1) else str(values[m.group(2)]), node)
        return False, text
    if isinstance(node, dict):
        entries = [(key, *_plan(child)) for key, child in node.items()]
        if all(fixed for _, fixed, _ in entries):
            return False, lambda values, t: dict(node)

        def fill_dict(values: dict[str, Any], t: Callable[..., str]) -> dict[str, Any]:
            out = {}
            for key, fixed, part in entries:
                filled = part if fixed else part(values, t)
                if filled is not _DROP:
                    out[key] = filled
            return out
        return False, fill_dict
    if isinstance(node, list):
        items = [(isinstance(child, str), *_plan(child)) for child in node]
        if all(fixed for _, fixed, _ in items):
            return False, lambda values, t: list(node)

        def fill_list(values: dict[str, Any], t: Callable[..., str]) -> list[Any]:
            out: list[Any] = []
            for from_string, fixed, part in items:
                filled = part if fixed else part(values, t)
                if filled is _DROP:
                    continue
                if from_string and isinstance(filled, list):  # a list value is spliced in
                    out.extend(filled)
                else:
                    out.append(filled)
            return out
        return False, fill_list
    return True, node  # a number, a boolean or null


def carousel(bubbles: list[dict[str, Any]]) -> dict[str, Any]:
    if not 1 <= len(bubbles) <= CAROUSEL_MAX_BUBBLES:
        raise CardError(f"a carousel holds 1 to {CAROUSEL_MAX_BUBBLES} bubbles, not {len(bubbles)}")
    return {"type": "carousel", "contents": bubbles}


def size_of(contents: dict[str, Any]) -> int:
    return len(json.dumps(contents, ensure_ascii=False, separators=(",", ":")).encode())


def message(alt_text: str, contents: dict[str, Any], quick_reply: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Flex message within LINE's limits (checked here so a bad card fails loudly, not at LINE)."""
    limit = CAROUSEL_MAX_BYTES if contents.get("type") == "carousel" else BUBBLE_MAX_BYTES
    if size_of(contents) > limit:
        raise CardError(f"flex {contents.get('type')} of {size_of(contents)} bytes (LINE allows {limit})")
    alt = clip(alt_text.strip(), ALT_TEXT_CAP) or "…"
    out: dict[str, Any] = {"type": "flex", "altText": alt, "contents": contents}
    if quick_reply:
        out["quickReply"] = quick_reply
    return out
