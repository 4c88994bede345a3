"""The rules file: a mistake stops start-up naming its line; every shipped setting is documented."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ASSETS
from rewards.rules import RulesError, load_rules
from tests.support.rules_helpers import DEFAULT, variant

ROOT = Path(__file__).resolve().parent.parent


def line_of(text: str, pattern: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if re.search(pattern, line))


@pytest.mark.parametrize("settings, extra, where", [
    ({"earn__signup__points": "-5"}, "", r"^points = -5"),
    ({"earn__purchase__rounding": '"sideways"'}, "", r"^rounding = \"sideways\""),
    ({"referral__trigger": '"tuesday"'}, "", r"^trigger = \"tuesday\""),
    ({"referral__hold_days": "1.5"}, "", r"^hold_days = 1.5"),
    ({"tiers__basis": '"vibes"'}, "", r"^basis = \"vibes\""),
    ({"points__expiry": '"soon"'}, "", r"^expiry = \"soon\""),
    ({"program__timezone": '"Mars/Olympus"'}, "", r"^timezone = \"Mars"),
    ({}, "[[rewards]]\nid = \"coffee\"\ncost = 1\nname = { ja = \"x\" }\n", r"^\[\[rewards\]\]"),  # duplicate id
    ({}, "[[rewards]]\nid = \"mug\"\ncost = 0\nname = { ja = \"x\" }\n", r"^cost = 0"),
    ({}, "[[rewards]]\nid = \"mug\"\ncost = 10\ntier = \"diamond\"\nname = { ja = \"x\" }\n", r"^tier = \"diamond\""),
    ({}, "[[campaigns]]\nname = \"bad\"\nstarts = 2027-01-02T00:00:00+09:00\nends = 2027-01-01T00:00:00+09:00\n"
         "rules = [\"purchase\"]\n", r"^ends = 2027-01-01"),
    ({"broadcasts__extra_message_yen": "-1"}, "", r"^extra_message_yen = -1"),
    ({}, "[[campaigns]]\nname = \"typo\"\nstarts = 2027-01-01T00:00:00+09:00\nends = 2027-01-02T00:00:00+09:00\n"
         "rules = [\"purchse\"]\n", r"^rules = \[\"purchse"),
])
def test_a_mistake_names_its_line(tmp_path, settings, extra, where) -> None:
    path = variant(tmp_path, extra, **settings)
    text = path.read_text()
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    expected = line_of(text, where) if "duplicate" not in where else None
    message = str(caught.value)
    assert re.search(r"line \d+", message), message
    if expected and "rewards" not in where:
        assert f"line {expected} " in message, (message, expected)


def test_broken_toml_names_line_and_column(tmp_path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(DEFAULT.replace("referrer_points = 500", "referrer_points = = 500"))
    with pytest.raises(RulesError, match=r"line \d+, column \d+"):
        load_rules(path)


def test_a_bad_rules_file_stops_start_up_with_one_line(tmp_path) -> None:
    path = variant(tmp_path, earn__signup__points="-5")
    env = {**os.environ, "LINE_CHANNEL_SECRET": "s", "LINE_CHANNEL_ACCESS_TOKEN": "t",
           "PUBLIC_BASE_URL": "https://x.example", "REWARDS_CONFIG": str(path), "DATA_DIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "bot", "serve", "--port", "0"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "line" in lines[0] and "earn.signup.points" in lines[0], run.stderr


def test_every_shipped_setting_is_explained_in_docs() -> None:
    docs = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    settings = set(re.findall(r"^([a-z_]+) = ", (ASSETS / "rules.toml").read_text(), re.M))
    missing = sorted(s for s in settings if f"`{s}`" not in docs)
    assert not missing, f"docs/rules.md does not explain: {missing}"


def test_every_shipped_setting_has_a_comment() -> None:
    """Each setting has a comment on its line, or above it, or where the same setting first appears."""
    lines = (ASSETS / "rules.toml").read_text().splitlines()
    explained: set[str] = set()
    for n, line in enumerate(lines):
        key = re.match(r"^([a-z_]+) = ", line)
        if not key:
            continue
        if "#" in line or any(a.startswith("#") for a in lines[max(0, n - 4):n]):
            explained.add(key.group(1))
        assert key.group(1) in explained, f"line {n + 1} is not explained: {line}"
