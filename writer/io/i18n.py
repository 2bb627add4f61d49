"""UI strings, one TOML file per language in `locales/`."""
from __future__ import annotations

import tomllib
from functools import lru_cache

from writer.config import PROJECT_ROOT

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
        """The text for `key`, formatted with `values`. With `count=1`, a `key_one`
        variant is used where a language has one ("1 article", not "1 articles"); so
        with `rows=1` ("1 row")."""
        if values.get("count", values.get("rows")) == 1 and self._strings.get(f"{key}_one"):
            key = f"{key}_one"
        text = self._strings[key]  # a missing key is a bug: fail loudly
        return text.format(**values) if values else text


def unit(t: Translator, language: str | None) -> str:
    """字 for a Chinese article, 词 / words for an English one (how its length counts)."""
    return t(f"units.{language}") if language in ("zh", "en") else t("units.mixed")


def article_unit(language: str | None) -> str:
    """The unit named in the article's own language: 字 for a Chinese article, words for
    an English one. What the command line, exports and results files print (their text is
    English, but a Chinese article is counted in 字, never "words")."""
    return unit(Translator(language if language in UI_LANGUAGES else "en"), language)
