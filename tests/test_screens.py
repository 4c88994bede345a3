"""`python -m linesim.screens`: every card picture is made, is a PNG of a sensible size and is not blank."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from linesim import screens
from tests.test_console_browser import chromium_path, playwright_api

MIN_COLOURS = 50  # a blank or one-colour frame has a handful; a card with text has hundreds
MAX_BYTES = 200_000
PAGE_MAX_BYTES = 600_000


@pytest.mark.browser
async def test_every_card_is_pictured(tmp_path: Path) -> None:
    executable = chromium_path()
    playwright_api()
    out = tmp_path / "screens"
    made = await screens.capture(out, chromium=executable)
    assert sorted(made) == sorted(screens.expected_files(out))
    for path in made:
        page = path.name.startswith("dash-")  # a dashboard page on a desk or a phone, not a card in its phone
        assert 2_000 < path.stat().st_size <= (PAGE_MAX_BYTES if page else MAX_BYTES), (path.name, path.stat().st_size)
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            width, height = image.size
            if page:  # the staff dashboard: a desk's width (one on a phone), whole pages
                assert width in (390, 1000) and 600 <= height <= 3000, (path.name, image.size)
            else:
                assert 300 <= width <= 500 and 300 <= height <= 1400, (path.name, image.size)
            colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
            assert colours is None or len(colours) > MIN_COLOURS, (path.name, len(colours or []))


def test_no_browser_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(screens.shutil, "which", lambda name: None)
    monkeypatch.setattr(screens.Path, "exists", lambda self: False)
    with pytest.raises(screens.ScreensError, match="no Chromium"):
        screens.find_chromium()


def test_the_script_says_so_in_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    def no_browser() -> str:
        raise screens.ScreensError("no Chromium: run `make browser` (Debian's chromium) first")

    monkeypatch.setattr(screens, "find_chromium", no_browser)
    assert screens.main(["--out", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "no Chromium" in captured.err
