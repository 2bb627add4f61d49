"""Statuses, failure kinds and notice kinds are enums shared by the engine, the store,
the pages and the locale files: every value has its UI string in every language, and
the code names them instead of spelling strings."""
import re
from pathlib import Path

import pytest

from writer.io.i18n import UI_LANGUAGES, Translator
from writer.kinds import CONTINUABLE, ErrorKind, LengthOutcome, NoticeKind, Status
from writer.storage.store import STATUSES

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("language", UI_LANGUAGES)
@pytest.mark.parametrize("enum, section", [(Status, "statuses"), (ErrorKind, "errors"),
                                           (NoticeKind, "notices"), (LengthOutcome, "outcomes")])
def test_every_kind_has_a_ui_string(language, enum, section):
    t = Translator(language)
    missing = [kind.value for kind in enum if not t.has(f"{section}.{kind.value}")]
    assert missing == [], f"{language}: no {section}.* string for {missing}"


@pytest.mark.parametrize("language", UI_LANGUAGES)
def test_no_orphan_strings(language):
    """A locale key for a kind that does not exist is a typo somewhere."""
    t = Translator(language)
    for enum, section in [(Status, "statuses"), (ErrorKind, "errors"), (NoticeKind, "notices"),
                          (LengthOutcome, "outcomes")]:
        keys = {k.split(".", 1)[1] for k in t._strings if k.startswith(section + ".")}
        assert keys <= {kind.value for kind in enum}, (section, keys - {k.value for k in enum})
    reasons = {k.split(".", 1)[1] for k in t._strings if k.startswith("retry_reasons.")}
    assert reasons <= {kind.value for kind in ErrorKind} | {"other", "http"}, reasons


def test_values_are_the_strings_stored_in_the_database():
    assert STATUSES == tuple(Status)
    assert Status.COMPLETED == "completed" and f"{Status.STOPPED}" == "stopped"
    assert set(CONTINUABLE) == {"stopped", "truncated", "failed"}


def test_engine_and_pages_name_kinds_instead_of_spelling_them():
    """No bare status / notice literals in the code that produces or shows them."""
    words = "|".join(sorted({*(s.value for s in Status), *(n.value for n in NoticeKind)}))
    pattern = re.compile(rf"""(==|!=|\bin\b|Notice\(|status=)\s*["']({words})["']""")
    offenders = []
    for path in [*(ROOT / "writer").rglob("*.py"), *(ROOT / "views").glob("*.py"), ROOT / "app.py"]:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
