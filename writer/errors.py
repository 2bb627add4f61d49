"""Refusals a person can cause, as one family.

Every error that a person's input, a setting or the state of their data can cause is a
`UserError`: it carries a locale key (`key`, looked up in locales/*.toml under
`user_errors.`; tests/test_kinds.py checks both languages have every key) and the values
the message needs, plus the English one-line message the CLI prints. Pages catch
`UserError` in one place (views/common.py `guarded`: the message in the UI language, the
English line collapsed under it) and the CLI in one place (writer/cli/main.py `main`):
nothing a person does shows a traceback.

The family, each beside the code that refuses (a class keeps its older base too, so an
`except ValueError` written before still catches it):

    SettingsError        writer/config.py            a setting that cannot be used
    BriefError           writer/brief.py             the brief (field and code for the form)
    BrandError           writer/brands.py            a brand kit
    PromptError          writer/generation/prompts.py  a prompt template file
    ProviderChoiceError  writer/providers/base.py    no provider as asked, a broken providers file
    LocalModelError      writer/providers/failures.py  the bundled model cannot run
    PriceFileError       writer/storage/prices.py    the price file
    StorageError         writer/storage/connection.py  the database refused (exit code 1)
    VersionError         writer/storage/versions.py  no such article or version
    SheetError           writer/io/sheet.py          a spreadsheet that cannot be read
    JobError             writer/runs/registry.py     a job that cannot start (re-exported by job.py)
    BatchError           writer/runs/batch.py        a batch that cannot start or resume
    CheckError           writer/runs/check.py        a provider check that cannot start
    BudgetExceeded       writer/storage/usage.py     a monthly budget set as a hard cap is reached

`exit_code` is what the CLI returns: 2 for a refused input, 1 for a failure of the
environment (a database that cannot be written).
"""
from __future__ import annotations

from writer import logs


class UserError(Exception):
    """A refusal a person can cause; `str(exc)` is the English one-line message."""

    key: str = "user_errors.generic"  # the locale key of the message
    exit_code: int = 2

    def __init__(self, message: str = "", *, key: str | None = None, **values):
        # Redacted (writer/logs.py): a message may quote an address with its password or
        # token, or a provider's text that echoes a key; it is printed and shown as is.
        super().__init__(logs.redact(message))
        if key:
            self.key = key
        # what the key's text needs ({name} placeholders)
        self.values = {k: logs.redact(v) if isinstance(v, str) else v for k, v in values.items()}
