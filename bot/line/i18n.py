"""Message texts per locale, from assets/locales/{lang}.toml and {lang}.{part}.toml (one file per feature area,
merged; a key defined twice is an error). Japanese first, English second; every key must exist in every locale."""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

DEFAULT = "ja"


class Texts:
    def __init__(self, directory: Path):
        self.locales: dict[str, dict[str, str]] = {}
        for path in sorted(directory.glob("*.toml")):
            lang = path.name.split(".")[0]
            table = self.locales.setdefault(lang, {})
            loaded = tomllib.loads(path.read_text(encoding="utf-8"))
            twice = sorted(set(table) & set(loaded))
            if twice:
                raise ValueError(f"locale keys defined twice for {lang} ({path.name}): {twice}")
            table.update(loaded)
        every = set().union(*self.locales.values())
        missing = {lang: sorted(every - set(table)) for lang, table in self.locales.items()}
        if any(missing.values()):
            raise ValueError(f"locale keys missing: {missing}")

    def lang_for(self, language: str | None) -> str:
        """A LINE language tag (ja, en, en-US…) to the locale we have; Japanese when unsure."""
        base = (language or DEFAULT).split("-")[0].lower()
        return base if base in self.locales else DEFAULT

    def get(self, lang: str, key: str, **values: Any) -> str:
        template = self.locales.get(lang, self.locales[DEFAULT]).get(key) or self.locales[DEFAULT][key]
        return template.format(**values) if values else template
