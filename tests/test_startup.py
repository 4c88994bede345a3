"""Start-up with bad input says what is wrong in one line: malformed numbers and ports, every missing variable
at once, a port already in use, a data directory another embedded Redis already uses. And `python -m bot dev`
makes its admin token per run instead of using a published one."""
from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import CommandLine, ConfigError, Settings
from bot.infra.redis_conn import DataDirInUse, EmbeddedRedis
from linesim.dev import dev_admin_token

ROOT = Path(__file__).resolve().parent.parent
GOOD_ENV = {"LINE_CHANNEL_SECRET": "s", "LINE_CHANNEL_ACCESS_TOKEN": "t", "PUBLIC_BASE_URL": "https://x.test"}
OLD_DEV_TOKEN = "shokai-dev-admin-token"  # the fixed token `dev` used to print (and anyone could read)


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LINE_", "REDIS_", "ADMIN_", "STAFF_", "REWARDS_", "PUBLIC_", "LOG_", "WORKER_",
                                "BROADCAST_", "HEALTH_"))
           and k not in ("PORT", "CONSOLE_PORT", "DATA_DIR")}
    env.update({"DATA_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}, **extra)
    return env


def fails_in_one_line(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "bot", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 2, output
    assert "Traceback" not in output
    assert len(output.splitlines()) == 1, output
    return output


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


# ---- numbers from the environment ----------------------------------------------------------------
@pytest.mark.parametrize("value", ["²", "٥٠٠٠", "1_000", " 1000", "1e4", "-1000", "9" * 5000, "0x3e8"])
def test_a_lease_that_is_not_plain_digits_is_refused_by_name(value: str) -> None:
    with pytest.raises(ConfigError, match="WORKER_LEASE_MS") as raised:
        Settings.from_env({**GOOD_ENV, "WORKER_LEASE_MS": value})
    assert "\n" not in str(raised.value) and len(str(raised.value)) < 200


def test_a_lease_in_plain_digits_is_taken() -> None:
    assert Settings.from_env({**GOOD_ENV, "WORKER_LEASE_MS": "0750"}).lease_ms == 750


@pytest.mark.parametrize("value", ["0", "1025", "²", "8.5", "-8"])
def test_stream_partitions_out_of_range_are_refused_by_name(value: str) -> None:
    with pytest.raises(ConfigError, match="STREAM_PARTITIONS"):
        Settings.from_env({**GOOD_ENV, "STREAM_PARTITIONS": value})


def test_stream_partitions_are_taken() -> None:
    assert Settings.from_env({**GOOD_ENV, "STREAM_PARTITIONS": "32"}).stream_partitions == 32
    assert Settings.from_env(GOOD_ENV).stream_partitions == 8


@pytest.mark.parametrize(("name", "value"), [
    ("PORT", "abc"), ("PORT", "²"), ("PORT", "0"), ("PORT", "65536"), ("PORT", "9" * 5000), ("PORT", "-1"),
    ("CONSOLE_PORT", "abc"), ("CONSOLE_PORT", "8080.5"), ("LOG_LEVEL", "loud"),
])
def test_the_command_line_defaults_refuse_a_malformed_value_by_name(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        CommandLine.from_env({name: value})


def test_the_command_line_defaults() -> None:
    assert CommandLine.from_env({}) == CommandLine(8000, 8080, "INFO")
    assert CommandLine.from_env({"PORT": "9000", "CONSOLE_PORT": "9001", "LOG_LEVEL": "debug"}) == \
        CommandLine(9000, 9001, "DEBUG")


@pytest.mark.parametrize(("name", "value"), [("BROADCAST_RATE", "9" * 5000), ("HEALTH_MAX_QUEUE_AGE_SECONDS", "²"),
                                             ("BROADCAST_RATE", "nan"), ("HEALTH_MAX_QUEUE_AGE_SECONDS", "inf")])
def test_the_other_numbers_are_refused_by_name_too(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name) as raised:
        Settings.from_env({**GOOD_ENV, name: value})
    assert len(str(raised.value)) < 300


def test_every_missing_variable_is_named_at_once() -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"PUBLIC_BASE_URL": "https://x.test"})
    assert str(raised.value) == "LINE_CHANNEL_SECRET and LINE_CHANNEL_ACCESS_TOKEN are not set"
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"LINE_CHANNEL_SECRET": " "})
    assert str(raised.value) == "LINE_CHANNEL_SECRET, LINE_CHANNEL_ACCESS_TOKEN and PUBLIC_BASE_URL are not set"


# ---- the command line, as a person runs it -------------------------------------------------------
@pytest.mark.parametrize(("extra", "named"), [
    ({"PORT": "abc"}, "PORT"),
    ({**GOOD_ENV, "WORKER_LEASE_MS": "²"}, "WORKER_LEASE_MS"),
    ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
])
def test_serve_with_a_malformed_number_says_so_in_one_line(tmp_path: Path, extra: dict[str, str], named: str) -> None:
    assert named in fails_in_one_line(["serve", "--port", "0"], clean_env(tmp_path, **extra))


def test_serve_without_anything_names_every_missing_variable_in_one_line(tmp_path: Path) -> None:
    line = fails_in_one_line(["serve", "--port", "0"], clean_env(tmp_path))
    assert all(name in line for name in ("LINE_CHANNEL_SECRET", "LINE_CHANNEL_ACCESS_TOKEN", "PUBLIC_BASE_URL"))


def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path: Path, taken_port: int) -> None:
    line = fails_in_one_line(["serve", "--host", "127.0.0.1", "--port", str(taken_port)],
                             clean_env(tmp_path, **GOOD_ENV))
    assert f"port {taken_port}" in line and "already in use" in line
    assert not (tmp_path / "redis").exists(), "nothing was started before the port was found taken"


@pytest.mark.parametrize("which", ["--port", "--console-port"])
def test_dev_on_a_port_in_use_says_so_in_one_line(tmp_path: Path, taken_port: int, which: str) -> None:
    ports = {"--port": str(free_port()), "--console-port": str(free_port()), which: str(taken_port)}
    line = fails_in_one_line(["dev", *(x for pair in ports.items() for x in pair)], clean_env(tmp_path))
    assert f"port {taken_port}" in line and which in line
    assert not (tmp_path / "redis").exists()


def test_a_second_embedded_redis_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path / "redis").start()
    try:
        with pytest.raises(DataDirInUse, match="DATA_DIR") as raised:
            EmbeddedRedis(tmp_path / "redis").start()
        assert str(first.proc.pid) in str(raised.value)  # type: ignore[union-attr]
        # and serve beside it stops in one line, before touching the append-only file
        line = fails_in_one_line(["serve", "--port", "0"], clean_env(tmp_path, **GOOD_ENV))
        assert "another embedded Redis" in line and str(tmp_path / "redis") in line
    finally:
        first.stop()
    EmbeddedRedis(tmp_path / "redis").start().stop()  # free again once the first one stopped


def test_the_lock_lives_as_long_as_the_server(tmp_path: Path) -> None:
    """A server whose parent died (here: it is simply never stopped by the parent's lock) still holds it."""
    first = EmbeddedRedis(tmp_path / "redis").start()
    proc = first.proc
    assert proc is not None
    first._release_lock()  # as if the parent had gone: only the server's inherited descriptor is left
    try:
        with pytest.raises(DataDirInUse):
            EmbeddedRedis(tmp_path / "redis").start()
    finally:
        proc.terminate()
        proc.wait(10)
        first.proc = None
    EmbeddedRedis(tmp_path / "redis").start().stop()


# ---- `python -m bot dev`: a token of its own, and what is refused beside it --------------------------
def test_dev_admin_token_is_new_each_run_unless_given() -> None:
    first, second = dev_admin_token({}), dev_admin_token({})
    assert first != second and len(first) >= 32 and OLD_DEV_TOKEN not in (first, second)
    assert dev_admin_token({"ADMIN_TOKEN": "mine"}) == "mine"


def admin_status(url: str, token: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def dashboard_home(url: str, email: str, password: str) -> str | None:
    """Sign in through the dashboard's form as a browser would; the email the page after it names."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with opener.open(url.rstrip("/") + "/login", timeout=10) as response:
        token = re.search(r'name="csrf" value="([^"]+)"', response.read().decode())
    assert token is not None
    form = urllib.parse.urlencode({"email": email, "password": password, "csrf": token.group(1)}).encode()
    with opener.open(url.rstrip("/") + "/login", data=form, timeout=30) as response:
        page = response.read().decode()
    return email if email in page and "signout" in page else None


def test_dev_prints_its_own_token_and_refuses_a_second_run_in_one_line(tmp_path: Path) -> None:
    port, console_port = free_port(), free_port()
    log_path = tmp_path / "dev.log"
    env = clean_env(tmp_path / "data")
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "bot", "dev", "--port", str(port), "--console-port",
                                    str(console_port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while "Admin token: " not in log_path.read_text() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        output = log_path.read_text()
        assert "Admin token: " in output, output
        token = output.split("Admin token: ", 1)[1].split()[0]
        assert token != OLD_DEV_TOKEN and len(token) >= 32
        member = f"http://127.0.0.1:{port}/api/v1/members/U{'0' * 32}"
        assert admin_status(member, token) == 404  # let in: no such member
        assert admin_status(member, OLD_DEV_TOKEN) == 403  # the wrong token
        # the staff dashboard's owner, made for this run, signs in with what was printed
        sign_in = re.search(r"Staff dashboard: (\S+)\s+sign in as (\S+) / (\S+)", output)
        assert sign_in, output
        assert dashboard_home(sign_in.group(1), sign_in.group(2), sign_in.group(3)) == sign_in.group(2)

        # `make run` again: the ports are taken
        line = fails_in_one_line(["dev", "--port", str(port), "--console-port", str(console_port)], env)
        assert "already in use" in line
        # `serve` beside it on the same DATA_DIR: the embedded Redis is taken
        line = fails_in_one_line(["serve", "--port", "0"], {**env, **GOOD_ENV})
        assert "another embedded Redis" in line
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
