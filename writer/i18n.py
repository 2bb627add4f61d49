"""UI strings, one TOML file per language in `locales/`."""
from __future__ import annotations

import tomllib
from functools import lru_cache

from .config import PROJECT_ROOT

LOCALES_DIR = PROJECT_ROOT / "locales"
UI_LANGUAGES = ("zh", "en")


@lru_cache(maxsize=4)
def strings(language: str) -> dict[str, str]:
    """Flat {"section.key": text} for one language."""
    with open(LOCALES_DIR / f"{language}.toml", "rb") as fh:
        data = tomllib.load(fh)
    return {f"{section}.{key}": text for section, table in data.items() for key, text in table.items()}


class Translator:
    def __init__(self, language: str):
        self.language = language
        self._strings = strings(language)

    def has(self, key: str) -> bool:
        return bool(self._strings.get(key))

    def __call__(self, key: str, **values) -> str:
        text = self._strings[key]  # a missing key is a bug: fail loudly
        return text.format(**values) if values else text
