"""Table tests of the small pure pieces: invite codes, the rules file, settings from the environment,
start-up failure output, and the locale files.
"""
import asyncio
import dataclasses
import os
import string
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ASSETS, ConfigError, Settings
from bot.line.i18n import DEFAULT, Texts
from rewards import codes
from rewards.rules import Rules, RulesError, load_rules

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RULES = (ASSETS / "rules.toml").read_text(encoding="utf-8")


# ---- invite codes --------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "code"), [
    ("ABCD2345", "ABCD2345"),
    ("ABCD-2345", "ABCD2345"),
    ("ABCD 2345", "ABCD2345"),
    ("ABCD\u30002345", "ABCD2345"),  # an ideographic space
    ("ＡＢＣＤ２３４５", "ABCD2345"),
    ("ＡＢＣＤ－２３４５", "ABCD2345"),
    ("abcd2345", "ABCD2345"),
    ("abcd-2345", "ABCD2345"),
    ("  ABCD2345  ", "ABCD2345"),
    ("招待コード ABCD2345 で登録します", "ABCD2345"),
    ("招待コードABCD2345で登録します", "ABCD2345"),
    ("招待コード ＡＢＣＤ２３４５ で登録します", "ABCD2345"),
    ("My invite code is ABCD2345", "ABCD2345"),
    ("コードはabcd-2345です！", "ABCD2345"),
    ("2345ABCD", "2345ABCD"),
    ("ZZZZ9999", "ZZZZ9999"),
    ("招待コード REFERRAL", "REFERRAL"),  # after a keyword any 8 code characters count
    ("紹介コード：HJKLMNPQ", "HJKLMNPQ"),
    ("code: WXYZWXYZ", "WXYZWXYZ"),
])
def test_find_code_finds(text: str, code: str) -> None:
    assert codes.find_code(text) == code


@pytest.mark.parametrize("text", [
    "",
    "招待",
    "REFERRAL",  # an English word: letters only
    "referral",
    "PASSWORD",
    "23456789",  # digits only
    "ABCD234",  # too short
    "ABCD23456",  # too long
    "XABCD2345",
    "ABCD2345X",
    "ABCD--2345",
    "ABCD2340",  # 0 is not in the alphabet
    "ABCO2345",  # nor O
    "ABC12345",  # nor 1
    "ABCI2345",  # nor I
    "招待コード ABCD2340",
    "招待コード ABCI-2345",
    "ポイント",
    "090-2345-6789",
])
def test_find_code_finds_nothing(text: str) -> None:
    assert codes.find_code(text) is None


def test_new_code_properties_over_many_draws() -> None:
    drawn = [codes.new_code() for _ in range(1000)]
    for code in drawn:
        assert len(code) == codes.LENGTH == 8
        assert set(code) <= set(codes.ALPHABET)
        assert not set(code) & set("01OI")
        assert any(c.isdigit() for c in code), code
        assert any(c.isalpha() for c in code), code
        assert codes.find_code(code) == code
        assert codes.find_code(codes.display(code)) == code
        assert codes.find_code(code.lower()) == code
    assert len(set(drawn)) == len(drawn)


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_the_invite_page_prefill_carries_the_code(lang: str) -> None:
    texts = Texts(ASSETS / "locales")
    for _ in range(300):
        code = codes.new_code()
        assert codes.find_code(texts.get(lang, "invite_prefill", code=code)) == code


# ---- rules: purchase points ----------------------------------------------------------------
SHIPPED = load_rules(ASSETS / "rules.toml")


def rules(rounding: str = "floor", yen_per_point: int = 100, minimum_order: int = 0) -> Rules:
    return dataclasses.replace(SHIPPED, rounding=rounding, yen_per_point=yen_per_point,
                               purchase_minimum_order=minimum_order)


@pytest.mark.parametrize(("rounding", "amount", "points"), [
    ("floor", 0, 0), ("floor", 99, 0), ("floor", 100, 1), ("floor", 149, 1), ("floor", 150, 1), ("floor", 199, 1),
    ("floor", 3050, 30), ("floor", 100_000_000, 1_000_000),
    ("ceil", 0, 0), ("ceil", 1, 1), ("ceil", 100, 1), ("ceil", 101, 2), ("ceil", 3050, 31),
    ("round", 0, 0), ("round", 49, 0), ("round", 51, 1), ("round", 149, 1), ("round", 151, 2), ("round", 3049, 30),
    ("round", 3051, 31), ("round", 350, 4),
    ("round", 50, 1), ("round", 150, 2), ("round", 250, 3), ("round", 3050, 31),  # half up (四捨五入), not half-even
])
def test_purchase_points_rounding(rounding: str, amount: int, points: int) -> None:
    assert rules(rounding).purchase_points(amount) == points


@pytest.mark.parametrize(("minimum", "amount", "points"), [
    (1000, 999, 0), (1000, 1000, 10), (1000, 1099, 10), (0, 0, 0), (500, 0, 0),
])
def test_purchase_minimum_order(minimum: int, amount: int, points: int) -> None:
    assert rules(minimum_order=minimum).purchase_points(amount) == points


@pytest.mark.parametrize(("yen_per_point", "amount", "points"), [(1, 3050, 3050), (200, 3050, 15), (1000, 999, 0)])
def test_purchase_yen_per_point(yen_per_point: int, amount: int, points: int) -> None:
    assert rules(yen_per_point=yen_per_point).purchase_points(amount) == points


# ---- rules: the file -----------------------------------------------------------------------
def test_the_shipped_rules_load() -> None:
    assert (SHIPPED.signup_points, SHIPPED.referrer_points, SHIPPED.friend_points) == (100, 500, 300)
    assert SHIPPED.purchase_points(3050) == 30
    assert [t.name for t in SHIPPED.tiers] == ["bronze", "silver", "gold", "platinum"]
    assert (SHIPPED.referral_trigger, SHIPPED.referral_minimum_order, SHIPPED.referral_hold_days) == \
        ("first_purchase", 0, 0), "the contract's defaults: any first purchase, no hold"


def edited(old: str, new: str) -> str:
    assert old in DEFAULT_RULES, old
    return DEFAULT_RULES.replace(old, new, 1)


def without_section(name: str) -> str:
    lines, out, skipping = DEFAULT_RULES.splitlines(), [], False
    for line in lines:
        if line.startswith("["):
            skipping = line.strip() == f"[{name}]"
        if not skipping:
            out.append(line)
    return "\n".join(out) + "\n"


TIERS_START = DEFAULT_RULES.index("# ---- Tiers")


@pytest.mark.parametrize(("text", "expected"), [
    (edited("points = 100 ", "points = "), "line "),
    (edited("[earn.purchase]", "[earn.purchase"), "line "),
    (edited('rounding = "floor"', "rounding = floor"), "line "),
    (without_section("referral"), "(referral.referrer_points): is required"),
    (without_section("earn.purchase"), "[earn.purchase] section is missing"),
    (edited("points = 100 ", "points = -5 "), "(earn.signup.points)"),
    (edited("points = 100 ", "points = 1.5 "), "(earn.signup.points)"),
    (edited("points = 100 ", 'points = "100" '), "(earn.signup.points)"),
    (edited("referrer_points = 500", "referrer_points = -500"), "(referral.referrer_points)"),
    (edited("friend_points = 300", "friend_points = true"), "(referral.friend_points)"),
    (edited("yen_per_point = 100", "yen_per_point = 0"), "(earn.purchase.yen_per_point)"),
    (edited("window_days = 7", "window_days = 0"), "(referral.window_days)"),
    (edited("max_failures = 5", "max_failures = 0"), "(code_guessing.max_failures)"),
    (edited('rounding = "floor"', 'rounding = "up"'), "(earn.purchase.rounding)"),
    (edited('trigger = "first_purchase"', 'trigger = "signup"'), "(referral.trigger)"),
    (edited("threshold = 1000", "threshold = 100000"), "(tiers.levels[0])"),
    (edited('name = "gold"', 'name = ""'), "(tiers.levels[2])"),
    (edited("threshold = 0 ", "threshold = -1 "), "(tiers.levels[0].threshold)"),
], ids=["empty-value", "unclosed-header", "bare-word", "no-referral", "no-purchase",
        "negative-points", "float-points", "string-points", "negative-referrer", "bool-friend", "zero-yen-per-point",
        "zero-window", "zero-guesses", "bad-rounding", "bad-trigger", "unsorted-tiers", "unnamed-tier",
        "negative-tier"])
def test_broken_rules_file_names_the_problem(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RulesError) as raised:
        load_rules(path)
    message = str(raised.value)
    assert expected in message, message
    assert "line " in message or "missing" in message or "required" in message, "it says where"
    assert "\n" not in message


def test_missing_rules_file_is_a_rules_error(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read rules file"):
        load_rules(tmp_path / "nope.toml")


@pytest.mark.parametrize("text", [
    edited("[earn.signup]\npoints = 100", "[earn]\nsignup = 100\n[earn.x]\npoints = 100"),
    "tiers = 5\n" + DEFAULT_RULES[:TIERS_START],
    "tiers = [\"gold\"]\n" + DEFAULT_RULES[:TIERS_START],
    "tiers = []\n" + DEFAULT_RULES[:TIERS_START],
    DEFAULT_RULES[:TIERS_START] + "[tiers]\nlevels = [\"gold\"]\n",
    DEFAULT_RULES.encode("utf-8").replace(b"# Shokai", b"# \xff Shokai", 1),
], ids=["section-not-a-table", "tiers-int", "tiers-strings", "tiers-empty", "levels-strings", "not-utf8"])
def test_oddly_shaped_rules_file_is_a_rules_error(tmp_path: Path, text: str | bytes) -> None:
    path = tmp_path / "rules.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    with pytest.raises(RulesError):
        load_rules(path).tier_for(0)


# ---- settings from the environment ---------------------------------------------------------
GOOD_ENV = {"LINE_CHANNEL_SECRET": "secret", "LINE_CHANNEL_ACCESS_TOKEN": "token",
            "PUBLIC_BASE_URL": "https://shop.example.test"}


def test_minimal_environment_gives_the_defaults() -> None:
    s = Settings.from_env(dict(GOOD_ENV))
    assert s.channel_secret == "secret" and s.channel_access_token == "token"
    assert s.public_base_url == "https://shop.example.test"
    assert s.line_api_base_url == "https://api.line.me"
    assert s.redis_url is None and s.admin_token is None and s.line_basic_id is None
    assert s.staff_user_ids == frozenset() and s.log_level == "INFO"


def test_full_environment_is_read() -> None:
    staff = ["U" + "1" * 32, "U" + "2" * 32]
    s = Settings.from_env({**GOOD_ENV, "PUBLIC_BASE_URL": "https://shop.example.test/", "REDIS_URL":
                           "rediss://r.example:6380/0", "LINE_BASIC_ID": " @shop ", "ADMIN_TOKEN": "adm",
                           "STAFF_USER_IDS": f" {staff[0]} ,{staff[1]},", "LOG_LEVEL": "debug",
                           "LINE_API_BASE_URL": "http://127.0.0.1:9999", "REDIS_CLUSTER": "1"})
    assert s.public_base_url == "https://shop.example.test"  # no trailing slash: links join cleanly
    assert s.redis_url == "rediss://r.example:6380/0" and s.redis_cluster
    assert s.line_basic_id == "@shop" and s.admin_token == "adm"
    assert s.staff_user_ids == frozenset(staff) and s.log_level == "DEBUG"
    assert s.line_api_base_url == "http://127.0.0.1:9999"


def env_without(name: str) -> dict[str, str]:
    return {k: v for k, v in GOOD_ENV.items() if k != name}


@pytest.mark.parametrize(("env", "variable"), [
    (env_without("LINE_CHANNEL_SECRET"), "LINE_CHANNEL_SECRET"),
    ({**GOOD_ENV, "LINE_CHANNEL_SECRET": "   "}, "LINE_CHANNEL_SECRET"),
    (env_without("LINE_CHANNEL_ACCESS_TOKEN"), "LINE_CHANNEL_ACCESS_TOKEN"),
    (env_without("PUBLIC_BASE_URL"), "PUBLIC_BASE_URL"),
    ({**GOOD_ENV, "PUBLIC_BASE_URL": "shop.example.test"}, "PUBLIC_BASE_URL"),
    ({**GOOD_ENV, "PUBLIC_BASE_URL": "ftp://shop.example.test"}, "PUBLIC_BASE_URL"),
    ({**GOOD_ENV, "PUBLIC_BASE_URL": "https://"}, "PUBLIC_BASE_URL"),
    ({**GOOD_ENV, "LINE_API_BASE_URL": "api.line.me"}, "LINE_API_BASE_URL"),
    ({**GOOD_ENV, "REDIS_URL": "http://localhost:6379"}, "REDIS_URL"),
    ({**GOOD_ENV, "REDIS_URL": "localhost:6379"}, "REDIS_URL"),
    ({**GOOD_ENV, "LINE_BASIC_ID": "shokai"}, "LINE_BASIC_ID"),
    ({**GOOD_ENV, "LINE_BASIC_ID": "@"}, "LINE_BASIC_ID"),
    ({**GOOD_ENV, "STAFF_USER_IDS": "U123"}, "STAFF_USER_IDS"),
    ({**GOOD_ENV, "STAFF_USER_IDS": "U" + "1" * 32 + ";U" + "2" * 32}, "STAFF_USER_IDS"),
    ({**GOOD_ENV, "STAFF_USER_IDS": "C" + "1" * 32}, "STAFF_USER_IDS"),
    ({**GOOD_ENV, "LOG_LEVEL": "loud"}, "LOG_LEVEL"),
    ({**GOOD_ENV, "LOG_LEVEL": "warn"}, "LOG_LEVEL"),
    ({**GOOD_ENV, "REWARDS_CONFIG": "/no/such/rules.toml"}, "REWARDS_CONFIG"),
    ({**GOOD_ENV, "WORKER_LEASE_MS": "fast"}, "WORKER_LEASE_MS"),
    ({**GOOD_ENV, "WORKER_LEASE_MS": "10"}, "WORKER_LEASE_MS"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_missing_or_malformed_variable_names_itself(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    message = str(raised.value)
    assert message.startswith(variable) or f" {variable} " in f" {message} "
    assert variable in message and "\n" not in message


def serve_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LINE_", "REDIS_", "ADMIN_", "STAFF_", "REWARDS_", "PUBLIC_", "LOG_", "WORKER_"))}
    env.update({"LINE_CHANNEL_ACCESS_TOKEN": "token", "PUBLIC_BASE_URL": "https://shop.example.test",
                "DATA_DIR": str(tmp_path)}, **extra)
    return env


def serve_fails_in_one_line(env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "bot", "serve", "--port", "0"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    output = (done.stdout + done.stderr).strip()
    assert "Traceback" not in output
    assert len(output.splitlines()) == 1, output
    return output


def test_serve_without_the_channel_secret_says_so_in_one_line(tmp_path: Path) -> None:
    assert "LINE_CHANNEL_SECRET" in serve_fails_in_one_line(serve_env(tmp_path))


def test_serve_with_a_broken_rules_file_says_so_in_one_line(tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text(edited('rounding = "floor"', "rounding = floor"), encoding="utf-8")
    env = serve_env(tmp_path, LINE_CHANNEL_SECRET="secret", REWARDS_CONFIG=str(rules_file))
    output = serve_fails_in_one_line(env)
    line = next(n for n, text in enumerate(DEFAULT_RULES.splitlines(), 1) if text.startswith('rounding = "floor"'))
    assert str(rules_file) in output and f"line {line}" in output


# ---- locales -------------------------------------------------------------------------------
TEXTS = Texts(ASSETS / "locales")


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def test_japanese_is_the_default_and_english_exists() -> None:
    assert DEFAULT == "ja"
    assert {"ja", "en"} <= set(TEXTS.locales)


@pytest.mark.parametrize("lang", sorted(TEXTS.locales))
def test_every_locale_has_every_japanese_key(lang: str) -> None:
    assert set(TEXTS.locales[DEFAULT]) - set(TEXTS.locales[lang]) == set()
    assert all(isinstance(v, str) and v.strip() for v in TEXTS.locales[lang].values())


@pytest.mark.parametrize("lang", sorted(TEXTS.locales))
def test_every_template_has_the_same_placeholders_as_japanese(lang: str) -> None:
    ja = TEXTS.locales[DEFAULT]
    differing = {key: (placeholders(ja[key]), placeholders(template))
                 for key, template in TEXTS.locales[lang].items()
                 if key in ja and placeholders(ja[key]) != placeholders(template)}
    assert differing == {}


@pytest.mark.parametrize(("text", "code"), [
    ("DECODE HELPDESK", None),  # a keyword inside a word, and two words, are not a code
    ("code please TAKE THAT", None),
    ("招待コード: ABCDEFGH", "ABCDEFGH"),
    ("my code is ABCD EFGH", None),
    ("code ABCD-EFGH", "ABCDEFGH"),
    ("コードはABCDEFGHです", "ABCDEFGH"),
])
def test_a_keyword_only_counts_right_before_the_code(text: str, code: str | None) -> None:
    assert codes.find_code(text) == code


@pytest.mark.parametrize(("name", "value"), [
    ("PUBLIC_BASE_URL", "https://shop.example/?utm=x"),
    ("REDIS_URL", "unix:///tmp/redis.sock"),
    ("STAFF_USER_IDS", "U" + "AB" * 16),
])
def test_more_malformed_settings(name: str, value: str) -> None:
    env = {"LINE_CHANNEL_SECRET": "s", "LINE_CHANNEL_ACCESS_TOKEN": "t", "PUBLIC_BASE_URL": "https://shop.example",
           name: value}
    with pytest.raises(ConfigError, match=name):
        Settings.from_env(env)


def test_serve_worker_and_dev_run_on_uvloop_unless_told_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvloop

    from bot.infra import event_loop

    monkeypatch.delenv("SHOKAI_EVENT_LOOP", raising=False)
    assert event_loop.loop_factory() is uvloop.new_event_loop

    async def loop_type() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert event_loop.run(loop_type()).startswith("uvloop")
    monkeypatch.setenv("SHOKAI_EVENT_LOOP", "asyncio")
    assert event_loop.loop_factory() is None
    assert event_loop.run(loop_type()).startswith("asyncio")
