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


def _user_errors() -> set[type]:
    """Every UserError class in writer/ (each module imported)."""
    import importlib
    import pkgutil

    import writer
    from writer.errors import UserError

    for module in pkgutil.walk_packages(writer.__path__, "writer."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found, todo = set(), [UserError]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.add(sub)
            todo.append(sub)
    return found


def test_every_refusal_a_person_can_cause_is_a_user_error():
    names = {cls.__name__ for cls in _user_errors()}
    assert {"BriefError", "BrandError", "JobError", "BatchError", "CheckError", "VersionError",
            "SettingsError", "ProviderChoiceError", "PromptError", "PriceFileError",
            "SheetError", "LocalModelError", "StorageError"} <= names
    from writer.storage.store import StorageError

    assert StorageError.exit_code == 1  # the environment failed, not the person's input


@pytest.mark.parametrize("language", UI_LANGUAGES)
def test_every_user_error_key_has_a_message_in_every_language(language):
    t = Translator(language)
    keys = {cls.key for cls in _user_errors()} | {"user_errors.generic"}
    spelled = re.compile(r"""key\s*=\s*["'](user_errors\.\w+)["']""")
    for path in [*(ROOT / "writer").rglob("*.py"), *(ROOT / "views").glob("*.py")]:
        keys |= set(spelled.findall(path.read_text(encoding="utf-8")))
    assert all(key.startswith("user_errors.") for key in keys), keys
    missing = sorted(key for key in keys if not t.has(key))
    assert missing == [], f"{language}: no message for {missing}"
    orphans = {k for k in t._strings if k.startswith("user_errors.")} - keys
    assert orphans == set(), f"{language}: messages no error uses: {sorted(orphans)}"
