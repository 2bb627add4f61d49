"""`python -m writer <command>`: the article goes to stdout as it streams; progress,
stats and messages go to stderr. Failures print one line, never a traceback.

Exit codes: 0 completed · 1 generation failed · 2 bad input or settings ·
3 truncated (the row can be continued) · 130 interrupted (partial saved).
Anything unexpected is logged, traceback included and keys redacted, to `writer.log`
next to the database (writer/logs.py); the terminal gets one line naming that file.

This module parses the command line, imports the one command module the command
needs (writer/cli/write.py, history.py, batch.py, brand.py, check.py, user.py) and is the one
place that turns an error into that line and an exit code. It imports nothing heavy:
`history` never loads the provider SDK, a tokenizer, the batch machinery or a model.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
from typing import Callable

from writer import logs
from writer.access import ROLES
from writer.brief import CONTENT_TYPES, LANGUAGES
from writer.cli.output import EXIT_FAILED, EXIT_INTERRUPTED, CliError, say
from writer.config import load_settings
from writer.errors import UserError
from writer.kinds import Status

# Choices and defaults of the flags, copied here so that building the parser loads no
# command's machinery; tests/cli/test_cli_imports.py checks each against its source.
STATUSES = tuple(status.value for status in Status)      # writer.storage.store.STATUSES
EXPORT_FORMATS = ("md", "txt", "html", "docx", "json")    # writer.io.export.FORMATS
USAGE_GROUPS = ("day", "model", "provider", "type", "author")  # writer.storage.usage.GROUPS
BATCH_MAX_CONCURRENCY = 8                                 # writer.runs.batch.MAX_CONCURRENCY
CHECK_LEVELS = (10,)                                      # writer.runs.check.DEFAULT_LEVELS
REVISION_PRESETS = ("shorter", "longer", "casual", "formal", "cta", "translate")
#                                                         # writer.runs.revisions.PRESETS


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other bad input
        raise CliError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m writer", description="AI writing assistant")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    write = sub.add_parser("write", help="write one article and save it")
    write.add_argument("--topic", required=True)
    write.add_argument("--type", dest="content_type", default="blog",
                       help=f"one of: {', '.join(CONTENT_TYPES)}")
    write.add_argument("--style", default="professional",
                       help="professional, casual, persuasive, storytelling, or free text")
    write.add_argument("--length", dest="target_words", type=int, default=800,
                       help="target words (CJK characters count one each), 50..20000")
    write.add_argument("--language", default="zh", help=f"one of: {', '.join(LANGUAGES)}")
    write.add_argument("--audience", default="")
    write.add_argument("--keywords", default="", help="comma-separated")
    write.add_argument("--model", default=None, help="overrides WRITER_MODEL")
    write.add_argument("--provider", default=None,
                       help="local (the bundled demo model) or the configured provider's name; "
                            "default: the configured provider if OPENAI_API_KEY is set, else local")
    write.add_argument("--variants", type=int, default=None, metavar="N",
                       help="write N versions of the brief (1-3) into one article; pick one "
                            "with `choose ID N`")
    write.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    write.add_argument("--no-length-control", dest="length_control", action="store_false",
                       help="free-form: do not hold the article to 0.8-1.2x the target length")
    write.add_argument("--brand", default=None, metavar="NAME",
                       help="write with this brand kit (see: python -m writer brand list)")
    history = sub.add_parser("history", help="list saved articles, newest first")
    history.add_argument("--search", default="", help="text to find (Chinese works; quote phrases)")
    history.add_argument("--status", default=None, choices=STATUSES)
    history.add_argument("--limit", type=int, default=20)
    history.add_argument("--author", default=None, metavar="NAME",
                         help="only this person's articles (as recorded: a WRITER_USER or an "
                              "account's name)")
    history.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    show = sub.add_parser("show", help="print one article, or save it with --out")
    show.add_argument("id", type=int)
    show.add_argument("--format", default=None, choices=EXPORT_FORMATS,
                      help="default: md, or the extension of --out")
    show.add_argument("--out", default=None, metavar="FILE",
                      help="write the file instead of printing (required for docx)")
    delete = sub.add_parser("delete", help="delete one article (its tokens and cost stay in usage)")
    delete.add_argument("id", type=int)
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    usage = sub.add_parser("usage", help="tokens and cost, grouped")
    usage.add_argument("--by", default="day", choices=USAGE_GROUPS)
    usage.add_argument("--since", default=None, type=_date, help="YYYY-MM-DD (UTC), inclusive")
    usage.add_argument("--until", default=None, type=_date, help="YYYY-MM-DD (UTC), inclusive")
    usage.add_argument("--author", default=None, metavar="NAME",
                       help="only what this person's articles used")
    usage.add_argument("--json", action="store_true")
    cont = sub.add_parser("continue", help="continue a stopped, truncated or failed article")
    cont.add_argument("id", type=int)
    cont.add_argument("--provider", default=None)
    cont.add_argument("--model", default=None)
    cont.add_argument("--quiet", action="store_true")
    cont.add_argument("--no-length-control", dest="length_control", action="store_false",
                      default=None, help="free-form: stop holding it to its target length")
    batch = sub.add_parser("batch", help="write one article per row of a CSV or Excel file")
    batch.add_argument("file", nargs="?", default=None, metavar="FILE",
                       help="a .csv or .xlsx file with a topic (主题) column; optional columns: "
                            "content_type, style, length, language, audience, keywords, brand "
                            "(or 类型 风格 字数 语言 读者 关键词 品牌)")
    batch.add_argument("--concurrency", type=int, default=None,
                       help=f"rows written at once, 1..{BATCH_MAX_CONCURRENCY} (default 4; the local "
                            "model writes one at a time)")
    batch.add_argument("--out", default=None, metavar="FILE",
                       help="save the results: .csv (UTF-8 with BOM, for Excel), .xlsx, or .zip "
                            "(one Markdown file per article); default: CSV on stdout")
    batch.add_argument("--resume", type=int, default=None, metavar="BATCH_ID",
                       help="go on with a stopped batch: completed rows are skipped, stopped "
                            "and failed ones written again in their own article")
    batch.add_argument("--yes", action="store_true",
                       help="start without asking (estimated cost, monthly budget)")
    batch.add_argument("--provider", default=None)
    batch.add_argument("--model", default=None)
    batch.add_argument("--quiet", action="store_true", help="no progress on stderr")
    batch.add_argument("--no-length-control", dest="length_control", action="store_false",
                       default=None, help="free-form: do not hold rows to their target length")
    check = sub.add_parser("check", help="measure and grade a provider (speed, smoothness, "
                                          "concurrency) beside its price")
    check.add_argument("--provider", default=None, help="local or a configured provider's name")
    check.add_argument("--model", default=None)
    check.add_argument("--runs", type=int, default=5,
                       help="connection and first-token measurements (1..50)")
    check.add_argument("--concurrency", default=",".join(map(str, CHECK_LEVELS)),
                       help="simultaneous streams per level, e.g. 10,50,100,200 (0: none)")
    check.add_argument("--prompt-set", default="short", choices=("short", "long"),
                       help="short: prompts of 0-800 tokens; long: 1,000-6,000")
    check.add_argument("--json", action="store_true", help="print the report as one JSON object")
    check.add_argument("--yes", action="store_true", help="do not ask before a paid provider")
    revise = sub.add_parser("revise", help="rewrite an article by an instruction, as a new "
                                           "version (the old ones are kept)")
    revise.add_argument("id", type=int)
    revise.add_argument("--instruction", default=None,
                        help='what to change, e.g. "make it shorter" or "更口语一些"')
    revise.add_argument("--preset", default=None, choices=REVISION_PRESETS,
                        help="a ready-made instruction (translate: into the other language)")
    revise.add_argument("--section", type=int, default=None, metavar="N",
                        help="revise only part N (by level-2 heading, else by paragraph; "
                             "see: python -m writer versions ID --sections)")
    revise.add_argument("--provider", default=None)
    revise.add_argument("--model", default=None)
    revise.add_argument("--quiet", action="store_true")
    revise.add_argument("--no-length-control", dest="length_control", action="store_false")
    versions_cmd = sub.add_parser("versions", help="list an article's versions")
    versions_cmd.add_argument("id", type=int)
    versions_cmd.add_argument("--json", action="store_true")
    versions_cmd.add_argument("--sections", action="store_true",
                              help="list the current text's sections (for revise --section)")
    choose = sub.add_parser("choose", help="make one of an article's versions current again")
    choose.add_argument("id", type=int)
    choose.add_argument("version", type=int)
    defaults = batch.add_argument_group("defaults for columns the file does not have")
    defaults.add_argument("--type", dest="content_type", default="blog")
    defaults.add_argument("--style", default="professional")
    defaults.add_argument("--length", dest="target_words", type=int, default=800)
    defaults.add_argument("--language", default="zh")
    defaults.add_argument("--audience", default="")
    defaults.add_argument("--brand", default=None, metavar="NAME",
                          help="brand kit for rows without a brand (品牌) cell")
    sub.add_parser("reindex", help="rebuild every search index from the articles (safe while "
                                   "the app runs)")
    brand = sub.add_parser("brand", help="brand kits: import, export, list")
    brand_sub = brand.add_subparsers(dest="brand_command", required=True, parser_class=_Parser)
    brand_import = brand_sub.add_parser("import", help="add the kits of a TOML file")
    brand_import.add_argument("file", metavar="FILE.toml")
    brand_import.add_argument("--replace", action="store_true",
                              help="replace saved kits of the same name (without it, a name "
                                   "already saved is refused and nothing is imported)")
    brand_export = brand_sub.add_parser("export", help="one kit as TOML")
    brand_export.add_argument("name")
    brand_export.add_argument("--out", default=None, metavar="FILE",
                              help="write the file instead of printing")
    brand_list = brand_sub.add_parser("list", help="the saved kits")
    brand_list.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    _user_parser(sub)
    migrate_db = sub.add_parser("migrate-db", help="copy a SQLite database into a new, empty "
                                                   "PostgreSQL database, counts checked")
    migrate_db.add_argument("--from", dest="source", required=True, metavar="SQLITE",
                            help="sqlite:///relative/path, sqlite:////absolute/path or a path")
    migrate_db.add_argument("--to", dest="target", required=True, metavar="POSTGRESQL_URL",
                            help="postgresql://user:password@host:5432/database (empty)")
    return parser


def _user_parser(sub) -> None:
    user = sub.add_parser("user", help="accounts people sign in with (WRITER_AUTH=accounts) "
                                       "and roles: add, list, remove, passwd, role")
    user_sub = user.add_subparsers(dest="user_command", required=True, parser_class=_Parser)
    stdin_help = ("read the password as one line of stdin (for scripts); without it the "
                  "password is asked twice on the terminal")
    add = user_sub.add_parser("add", help="add an account")
    add.add_argument("name", help="1-64 letters, digits and . _ @ + - (e.g. an e-mail address "
                                  "for OIDC)")
    add.add_argument("--role", required=True, type=str.lower, choices=ROLES)
    how = add.add_mutually_exclusive_group()
    how.add_argument("--password-stdin", action="store_true", help=stdin_help)
    how.add_argument("--no-password", action="store_true",
                     help="no password: the person signs in only through the identity "
                          "provider (WRITER_AUTH=oidc); the account gives their role")
    listing = user_sub.add_parser("list", help="the accounts: name and role")
    listing.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    remove = user_sub.add_parser("remove", help="remove an account and sign it out (what the "
                                                "person wrote stays)")
    remove.add_argument("name")
    passwd = user_sub.add_parser("passwd", help="set a new password (signs the person out)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true", help=stdin_help)
    role = user_sub.add_parser("role", help="make an account an admin or a writer")
    role.add_argument("name")
    role.add_argument("role", type=str.lower, choices=ROLES)


def _date(value: str) -> str:
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date like 2026-11-01") from None


def _command(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """The command `name` of writer/cli/<module>.py, imported when it runs."""
    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(f"writer.cli.{module}"), name)(args)

    run.__name__, run.module = name, f"writer.cli.{module}"
    return run


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "write": _command("write", "cmd_write"), "continue": _command("write", "cmd_continue"),
    "revise": _command("write", "cmd_revise"),
    "history": _command("history", "cmd_history"), "show": _command("history", "cmd_show"),
    "delete": _command("history", "cmd_delete"), "usage": _command("history", "cmd_usage"),
    "versions": _command("history", "cmd_versions"), "choose": _command("history", "cmd_choose"),
    "batch": _command("batch", "cmd_batch"), "brand": _command("brand", "cmd_brand"),
    "check": _command("check", "cmd_check"), "reindex": _command("reindex", "cmd_reindex"),
    "user": _command("user", "cmd_user"),
    "migrate-db": _command("migrate_db", "cmd_migrate_db"),
}

def _configure_logging() -> None:
    """Log to writer.log next to WRITER_DB; a bad setting is reported by the command."""
    try:
        logs.configure(load_settings().db_path)
    except Exception:
        pass


def main(argv: list[str] | None = None) -> int:
    command = "?"
    try:
        _configure_logging()
        args = build_parser().parse_args(argv)
        command = args.command
        return COMMANDS[args.command](args)
    except UserError as exc:  # a refusal a person can cause (CliError is one)
        say(f"error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        say("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_FAILED
    except Exception as exc:
        return _unexpected(command, exc)


def _unexpected(command: str, exc: Exception) -> int:
    """A bug: one line here, the traceback in the log."""
    try:
        line = logs.log_exception(f"python -m writer {command} failed", exc)
    except Exception:
        line = f"unexpected {type(exc).__name__}"
    say(f"error: {line}")
    return EXIT_FAILED
