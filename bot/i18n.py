"""Message texts per locale, from assets/locales/*.toml. Japanese first, English second."""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

DEFAULT = "ja"


class Texts:
    def __init__(self, directory: Path):
        self.locales: dict[str, dict[str, str]] = {
            path.stem: tomllib.loads(path.read_text(encoding="utf-8")) for path in sorted(directory.glob("*.toml"))}
        missing = {lang: sorted(set(self.locales[DEFAULT]) - set(table)) for lang, table in self.locales.items()}
        if any(missing.values()):
            raise ValueError(f"locale keys missing: {missing}")

    def lang_for(self, language: str | None) -> str:
        """A LINE language tag (ja, en, en-US…) to the locale we have; Japanese when unsure."""
        base = (language or DEFAULT).split("-")[0].lower()
        return base if base in self.locales else DEFAULT

    def get(self, lang: str, key: str, **values: Any) -> str:
        template = self.locales.get(lang, self.locales[DEFAULT]).get(key) or self.locales[DEFAULT][key]
        return template.format(**values) if values else template
