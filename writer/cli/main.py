"""`python -m writer <command>`: the article goes to stdout as it streams; progress,
stats and messages go to stderr. Failures print one line, never a traceback.

Exit codes: 0 completed · 1 generation failed · 2 bad input or settings ·
3 truncated (the row can be continued) · 130 interrupted (partial saved).
Anything unexpected is logged, traceback included and keys redacted, to `writer.log`
next to the database (writer/logs.py); the terminal gets one line naming that file.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import threading
import time
import unicodedata
from pathlib import Path

from writer.runs import batch as batches
from writer import brands as brand_kits
from writer.runs import check as checks
from writer import logs
from writer.storage import versions
from writer.brands import BrandError
from writer.brief import CONTENT_TYPES, LANGUAGES, Brief, BriefError
from writer.config import SettingsError, load_settings
from writer.storage.prices import PriceFileError
from writer.generation.engine import Delta, Finished, Notice, Outlined
from writer.providers.failures import LocalModelError
from writer.io.export import FORMATS, export
from writer.runs.job import Job, JobError
from writer.runs.batch import MAX_CONCURRENCY, BatchError
from writer.io.sheet import SheetError, read_table
from writer.io.sheet import briefs as check_rows
from writer.runs.workers import Registry
from writer.kinds import CheckStatus, NoticeKind, Status
from writer.generation.prompts import PromptError
from writer.providers.base import ProviderChoiceError, choose_provider
from writer.runs.revisions import PRESETS as REVISION_PRESETS
from writer.runs.revisions import RevisionJob, sections
from writer.runs.variants import gather as gather_variants
from writer.runs.variants import jobs_for as variant_jobs
from writer.runs.variants import tag as tag_variants
from writer.storage.search import Filters, search
from writer.storage.store import STATUSES, StorageError, Store
from writer.storage.usage import GROUPS, by_group

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TRUNCATED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


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
    history.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    show = sub.add_parser("show", help="print one article, or save it with --out")
    show.add_argument("id", type=int)
    show.add_argument("--format", default=None, choices=FORMATS,
                      help="default: md, or the extension of --out")
    show.add_argument("--out", default=None, metavar="FILE",
                      help="write the file instead of printing (required for docx)")
    delete = sub.add_parser("delete", help="delete one article (its tokens and cost stay in usage)")
    delete.add_argument("id", type=int)
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    usage = sub.add_parser("usage", help="tokens and cost, grouped")
    usage.add_argument("--by", default="day", choices=tuple(GROUPS))
    usage.add_argument("--since", default=None, type=_date, help="YYYY-MM-DD (UTC), inclusive")
    usage.add_argument("--until", default=None, type=_date, help="YYYY-MM-DD (UTC), inclusive")
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
                       help=f"rows written at once, 1..{MAX_CONCURRENCY} (default 4; the local "
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
    check.add_argument("--concurrency", default=",".join(map(str, checks.DEFAULT_LEVELS)),
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
    brand = sub.add_parser("brand", help="brand kits: import, export, list")
    brand_sub = brand.add_subparsers(dest="brand_command", required=True, parser_class=_Parser)
    brand_import = brand_sub.add_parser("import", help="add or update the kits of a TOML file")
    brand_import.add_argument("file", metavar="FILE.toml")
    brand_export = brand_sub.add_parser("export", help="one kit as TOML")
    brand_export.add_argument("name")
    brand_export.add_argument("--out", default=None, metavar="FILE",
                              help="write the file instead of printing")
    brand_list = brand_sub.add_parser("list", help="the saved kits")
    brand_list.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    return parser


def _date(value: str) -> str:
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date like 2026-11-01") from None


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_write(args) -> int:
    kit = _brand(_open_store(), args.brand) if args.brand else None
    brief = Brief(topic=args.topic, content_type=args.content_type, style=args.style,
                  target_words=args.target_words, language=args.language,
                  audience=args.audience, keywords=args.keywords, brand=kit)
    settings = load_settings()
    provider = choose_provider(settings, args.provider, args.model)
    if args.variants is not None and args.variants != 1:
        return _write_variants(brief, settings, provider, args)
    job = Job(brief, settings, provider=provider, length_control=args.length_control)
    if job.brief.language != brief.language:
        _say(f"note: {job.provider.name} writes {job.brief.language} only; the article will be in "
             f"{job.brief.language}")
    control = "held to 0.8–1.2×" if job.length else "free-form"
    _say(f"writing with {job.provider.label()} · target {brief.target_words} words ({control})")
    return _stream(job, args.quiet)


def _write_variants(brief: Brief, settings, provider, args) -> int:
    """N versions of the brief, one after the other, each streamed to stdout under a
    header; then gathered into one article whose versions they are (version 1 current)."""
    try:
        jobs = variant_jobs(brief, settings, args.variants, provider=provider,
                            length_control=args.length_control)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    store = _open_store()
    ids = [job.queue() for job in jobs]
    tag_variants(store, ids)
    _say(f"writing {len(jobs)} variants with {jobs[0].provider.label()} · target "
         f"{brief.target_words} words")
    codes = []
    for number, job in enumerate(jobs, 1):
        sys.stdout.write(("\n" if number > 1 else "") + f"--- variant {number} of {len(jobs)} ---\n")
        code = _stream(job, args.quiet)
        codes.append(code)
        if code == EXIT_INTERRUPTED:
            break  # Ctrl-C: the rest are not written
    for job in jobs[len(codes):]:  # not written (Ctrl-C): their queued rows go
        job.cancel(wait_s=0)
        list(job.run())
    article_id = gather_variants(store, ids[0])
    if article_id is None:
        raise CliError(f"the variants of #{ids[0]} could not be gathered", EXIT_FAILED)
    _say(f"#{article_id}: {len(jobs)} variants kept as versions 1-{len(jobs)} (version 1 is "
         f"current); pick another with: python -m writer choose {article_id} N")
    return EXIT_OK if any(code == EXIT_OK for code in codes) else codes[-1]


def cmd_continue(args) -> int:
    settings = load_settings()
    provider = choose_provider(settings, args.provider, args.model) if (
        args.provider or args.model) else None
    extra = {} if args.length_control is None else {"length_control": args.length_control}
    job = Job.continuing(args.id, settings, provider=provider, **extra)
    _say(f"continuing #{args.id} ({job.words}/{job.brief.target_words} words) with "
         f"{job.provider.label()}")
    return _stream(job, args.quiet)


def _stream(job: Job, quiet: bool) -> int:
    """Print a job's text to stdout as it arrives; notices and stats to stderr."""
    show_progress = not quiet and sys.stderr.isatty()
    last_progress = 0.0
    announced = None
    events = job.run()
    try:
        for event in events:
            if isinstance(event, Delta):
                sys.stdout.write(event.text)
                sys.stdout.flush()
                now = time.monotonic()
                if show_progress and now - last_progress > 0.2:
                    sys.stderr.write(f"\x1b7\r[{job.words}/{job.brief.target_words}]\x1b8")
                    last_progress = now
            elif isinstance(event, Notice) and (event.kind, event.attempt) != announced:
                announced = (event.kind, event.attempt)  # notices repeat; say each once
                if event.kind == NoticeKind.RETRYING:
                    _say(f"{event.message}; retrying in {event.wait_s:.0f} s "
                         f"(attempt {event.attempt} of {event.max_attempts})")
                elif event.kind == NoticeKind.SECTION:
                    _say(f"section {event.attempt}/{event.max_attempts}: {event.message}")
                else:
                    _say(event.message)
            elif isinstance(event, Outlined):
                _say("outline:\n" + event.outline.as_markdown())
            elif isinstance(event, Finished):
                return _report(job, event)
    except KeyboardInterrupt:
        events.close()  # closes the provider connection, then saves the partial text
        _say(f"\ninterrupted: partial article saved as #{job.article_id} ({job.words} words); "
             f"resume it with: python -m writer continue {job.article_id}")
        return EXIT_INTERRUPTED
    return EXIT_FAILED


def _report(job, finished: Finished) -> int:
    sys.stdout.write("\n")
    sys.stdout.flush()
    usage, metrics = finished.usage, finished.metrics
    cost = ("unpriced" if job.cost is None else "0 (local model)" if job.currency == "local"
            else f"{job.cost:.6f} {job.currency}")
    ttft = f"{metrics.ttft_ms:.0f} ms" if metrics.ttft_ms is not None else "-"
    rate = f"{metrics.tokens_per_s:.1f} tokens/s" if metrics.tokens_per_s else "– tokens/s"
    which = f"#{job.article_id}" + (f" version {job.version_number}"
                                     if getattr(job, "version_number", None) else "")
    _say(f"{which} {finished.status} · {job.words}/{job.brief.target_words} words · "
         f"tokens {usage.input_tokens} in / {usage.output_tokens} out ({usage.source}) · "
         f"cost {cost} · first token {ttft} · total {metrics.duration_ms / 1000:.1f} s · {rate}")
    if finished.length_outcome:
        ratio = job.words / job.brief.target_words
        rounds = finished.length_rounds
        _say(f"length: {finished.length_outcome.replace('_', ' ')} ({ratio:.2f}× the target, "
             f"{rounds} round{'s' if rounds != 1 else ''})")
    _say_checks(job.article_id)
    if finished.status == Status.COMPLETED:
        return EXIT_OK
    if finished.status == Status.STOPPED:
        if job.deleted:
            _say(f"article #{job.article_id} was deleted while it was being written; stopped "
                 "(its tokens and cost still count in usage)")
        return EXIT_INTERRUPTED
    _say(f"error: {finished.error}")
    if finished.status == Status.TRUNCATED:
        _say(f"continue it with: python -m writer continue {job.article_id}")
    return EXIT_TRUNCATED if finished.status == Status.TRUNCATED else EXIT_FAILED


def cmd_revise(args) -> int:
    settings = load_settings()
    provider = choose_provider(settings, args.provider, args.model) if (
        args.provider or args.model) else None
    job = RevisionJob(args.id, settings, instruction=args.instruction, preset=args.preset,
                      section=args.section, provider=provider, length_control=args.length_control)
    part = f"section {args.section}" if args.section else "the whole article"
    _say(f"revising #{args.id} ({part}) with {job.provider.label()}: {job.instruction}")
    code = _stream(job, args.quiet)
    if code == EXIT_OK:
        _say(f"version {job.version_number} is now current; the earlier ones are kept "
             f"(python -m writer versions {args.id})")
    return code


def cmd_versions(args) -> int:
    store = _open_store()
    article = _get(store, args.id)
    if args.sections:
        for part in sections(article["content"] or ""):
            sys.stdout.write(f"{part.number}\t{part.title}\n")
        return EXIT_OK
    listed = versions.listing(store, args.id)
    if args.json:
        for v in listed:
            sys.stdout.write(json.dumps({**v, "current": v["number"] == article.get(
                "current_version")}, ensure_ascii=False) + "\n")
        return EXIT_OK
    for v in listed:
        mark = "*" if v["number"] == article.get("current_version") else " "
        cost = ("unpriced" if v["cost"] is None else f"{v['cost']:.6f} {v['currency']}")
        what = v["kind"] + (f" §{v['section']}" if v["section"] else "")
        sys.stdout.write(f"{mark}{v['number']:>3}  {what:<12} {v['status']:<10} "
                         f"{v['words'] or 0:>6} words  {cost:<18} {v['created_at'][:16]}  "
                         f"{_one_line(v['instruction'] or '')}\n")
    if not listed:
        _say(f"article #{args.id} has no versions (written before versions were kept)")
    return EXIT_OK


def cmd_choose(args) -> int:
    store = _open_store()
    article = _get(store, args.id)
    kit = brand_kits.get(store, article["brand"]) if article.get("brand") else None
    try:
        versions.choose(store, args.id, args.version, kit)  # its checks run again
    except versions.VersionError as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    _say(f"#{args.id}: version {args.version} is now current")
    return EXIT_OK


def _open_store() -> Store:
    return Store(load_settings().db_path)


def _brand(store: Store, name: str) -> brand_kits.BrandKit:
    """The saved kit of this name, or a one-line error naming the known ones."""
    kit = brand_kits.get(store, name)
    if kit is None:
        known = brand_kits.names(store)
        raise CliError(f"there is no brand kit «{_one_line(name)}»; " + (
            f"known: {', '.join(known)}" if known else
            "none saved yet: python -m writer brand import FILE.toml"))
    return kit


def _say_checks(article_id: int | None) -> None:
    """One stderr line per problem the article's brand / keyword check found."""
    row = _open_store().get(article_id) if article_id else None
    found = (row or {}).get("checks")  # decoded by the store
    if not isinstance(found, dict) or found.get("passed", True):
        return
    terms: dict[str, list[int]] = {}
    for hit in found.get("banned_found", []):
        terms.setdefault(hit["term"], []).append(hit["start"])
    for term, starts in terms.items():
        _say(f"check: banned word «{term}» at character{'s' if len(starts) > 1 else ''} "
             f"{', '.join(map(str, starts))}")
    for term in found.get("required_missing", []):
        _say(f"check: required term missing: «{term}»")
    for term in found.get("keywords_missing", []):
        _say(f"check: keyword missing: «{term}»")


def cmd_brand(args) -> int:
    store = _open_store()
    if args.brand_command == "import":
        path = Path(args.file)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            kits = brand_kits.from_toml(data)
        except BrandError as exc:
            raise CliError(f"{path.name}: {exc}") from None
        for kit in kits:
            existed = kit.name in brand_kits.names(store)
            brand_kits.save(store, kit)
            _say(f"{'updated' if existed else 'imported'} brand kit «{kit.name}»")
        return EXIT_OK
    if args.brand_command == "export":
        kit = _brand(store, args.name)
        text = brand_kits.to_toml(kit)
        if args.out:
            _write_file(Path(args.out), text.encode("utf-8"))
            _say(f"saved brand kit «{kit.name}» as {args.out}")
        else:
            sys.stdout.write(text)
        return EXIT_OK
    kits = brand_kits.listing(store)
    for kit in kits:
        if args.json:
            print(json.dumps({"id": kit.id, **kit.as_dict()}, ensure_ascii=False))
        else:
            print(f"{kit.name:<24} {len(kit.banned_words):>3} banned · "
                  f"{len(kit.required_terms):>3} required · {len(kit.do) + len(kit.dont):>3} "
                  f"rules · {len(kit.samples)} sample{'s' if len(kit.samples) != 1 else ''}"
                  + (f" · {_one_line(kit.voice, 40)}" if kit.voice else ""))
    if not args.json:
        _say(f"{len(kits)} brand kit{'s' if len(kits) != 1 else ''}")
    return EXIT_OK


def cmd_history(args) -> int:
    page = search(_open_store(), Filters(query=args.search, status=args.status),
                  limit=max(1, args.limit))
    if args.json:
        for row in page.rows:
            print(json.dumps(row, ensure_ascii=False))
    else:
        for r in page.rows:
            cost = "unpriced" if r["cost"] is None else f"{r['cost']:.4f} {r['currency']}"
            print(f"#{r['id']:<5} {r['created_at'][:16].replace('T', ' ')}  {r['status']:<9} "
                  f"{r['words']:>6}/{r['target_words']:<6} {cost:>14}  {r['model']}  {r['topic']}")
    _say(f"{len(page.rows)} shown of {page.total_label} matching")
    return EXIT_OK


def _get(store: Store, article_id: int) -> dict:
    row = store.get(article_id)
    if row is None:
        raise CliError(f"there is no article #{article_id}")
    return row


def _one_line(text: str, limit: int = 60) -> str:
    """A topic fit for a terminal line: no control characters (no escape sequences),
    whitespace collapsed, shortened with an ellipsis."""
    text = "".join(ch for ch in str(text or "") if unicodedata.category(ch) not in ("Cc", "Cs"))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def cmd_show(args) -> int:
    fmt = args.format
    if fmt is None:
        suffix = Path(args.out).suffix.lower().lstrip(".") if args.out else ""
        fmt = suffix if suffix in FORMATS else "md"
    if fmt == "docx" and not args.out:
        raise CliError("docx is binary: add --out FILE")
    store = _open_store()
    row = _get(store, args.id)
    if fmt == "json":  # every version: draft, variants, revisions
        row["versions"] = versions.listing(store, args.id)
    data, _, _ = export(row, fmt)
    if args.out:
        _write_file(Path(args.out), data)
        _say(f"saved #{args.id} as {args.out}")
        return EXIT_OK
    out = getattr(sys.stdout, "buffer", None)
    if out is not None:  # bytes as exported, whatever the terminal's encoding
        sys.stdout.flush()
        out.write(data)
        out.flush()
    else:
        sys.stdout.write(data.decode("utf-8"))
    return EXIT_OK


def _write_file(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole or not at all (a temporary file renamed over it)."""
    if path.is_dir():
        raise CliError(f"cannot write {path}: it is a folder")
    if not path.parent.is_dir():
        raise CliError(f"cannot write {path}: folder {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}", EXIT_FAILED) from None


def cmd_delete(args) -> int:
    store = _open_store()
    row = _get(store, args.id)
    topic = _one_line(row.get("topic"))
    if not args.yes:
        if not (sys.stdin is not None and sys.stdin.isatty()):
            raise CliError(f"not deleting #{args.id} without confirmation: add --yes")
        sys.stderr.write(f"delete #{args.id} «{topic}»? [y/N] ")
        sys.stderr.flush()
        answer = sys.stdin.readline()
        if answer.strip().lower() not in ("y", "yes"):
            if not answer.endswith("\n"):
                sys.stderr.write("\n")  # EOF: end the prompt line
            _say(f"kept #{args.id}")
            return EXIT_FAILED
    if row.get("status") == Status.STREAMING:
        _say(f"#{args.id} is still being written; the writer notices the delete and stops "
             f"within a few seconds")
    if not store.delete(args.id):
        raise CliError(f"there is no article #{args.id}")
    _say(f"deleted #{args.id} «{topic}»; its tokens and cost stay in usage")
    return EXIT_OK


def cmd_usage(args) -> int:
    rows = by_group(_open_store(), args.by, args.since, args.until)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return EXIT_OK
    print(f"{args.by:<24} {'currency':<8} {'articles':>8} {'input':>12} {'output':>12} "
          f"{'cost':>14} {'unpriced':>8} {'estimated':>9}")
    for r in rows:
        cost = "-" if r["cost"] is None else f"{r['cost']:.4f}"
        print(f"{str(r['group']):<24} {r['currency'] or '-':<8} {r['articles']:>8} "
              f"{r['input_tokens']:>12} {r['output_tokens']:>12} {cost:>14} "
              f"{r['unpriced_articles']:>8} {r['estimated_articles']:>9}")
    return EXIT_OK


def cmd_batch(args) -> int:
    settings = load_settings()
    store = _open_store()
    if args.resume is None and not args.file:
        raise CliError("name a .csv or .xlsx file, or --resume BATCH_ID")
    if args.concurrency is not None and not 1 <= args.concurrency <= MAX_CONCURRENCY:
        raise CliError(f"--concurrency {args.concurrency}: use 1 to {MAX_CONCURRENCY}")
    if args.out and Path(args.out).suffix.lower().lstrip(".") not in batches.EXPORTS:
        raise CliError(f"--out {args.out}: use a .csv, .xlsx or .zip file name")
    if args.resume is not None:
        batch = batches.get(store, args.resume)
        if batch is None:
            raise CliError(f"there is no batch #{args.resume}; list them on the Batch page")
        saved = batch["settings"]
        name = args.provider or saved.get("provider")
        try:
            provider = choose_provider(settings, name, args.model or saved.get("model"))
        except ProviderChoiceError:
            provider = choose_provider(settings, args.provider, args.model)
        batch_id = args.resume
        todo = [r for r in batches.rows(store, batch_id)
                if batches.needs_writing(r, saved.get("length_control", True))]
        if args.file:
            _say(f"note: resuming batch #{batch_id} from its saved rows; {args.file} is not read")
        _say(f"batch #{batch_id} ({batch['file_name']}): {len(todo)} of {batch['valid_rows']} "
             f"rows left to write with {provider.label()}")
        if not todo:
            _say("nothing left to write")
            _batch_output(store, batch_id, args.out)
            return EXIT_OK
        briefs = [Brief(**{**r["brief"], "keywords": tuple(r["brief"]["keywords"])})
                  for r in todo]
    else:
        path = Path(args.file)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
        defaults = {"content_type": args.content_type, "style": args.style,
                    "length": args.target_words, "language": args.language,
                    "audience": args.audience}
        if args.brand:  # a kit that exists (one line, exit 2, otherwise)
            defaults["brand"] = _brand(store, args.brand).name
        Brief(topic="defaults", content_type=args.content_type, style=args.style,
              target_words=args.target_words, language=args.language)  # checks the flags
        try:
            table = read_table(data, path.name)
        except SheetError as exc:
            raise CliError(str(exc)) from None
        rows = check_rows(table, defaults, brand_kits.listing(store))
        bad = [row for row in rows if not row.ok]
        for row in bad[:20]:
            _say(f"row {row.number} (line {row.number + 1}) skipped: {row.error.replace('_', ' ')}"
                 + (f" ({_one_line(row.detail)})" if row.detail else ""))
        if len(bad) > 20:
            _say(f"… and {len(bad) - 20} more rows with errors")
        briefs = [row.brief for row in rows if row.ok]
        if not briefs:
            raise CliError(f"no row of {path.name} can be written: fix the errors above")
        provider = choose_provider(settings, args.provider, args.model)
    if provider.languages:
        other = sum(brief.language not in provider.languages for brief in briefs)
        if other:
            _say(f"note: {provider.name} writes {'/'.join(provider.languages)} only; {other} "
                 f"row{'s' if other != 1 else ''} asking for another language will be written "
                 f"in {provider.languages[0]}")
    guess = batches.estimate(briefs, provider, settings, store)
    _say(f"{guess.rows} row{'s' if guess.rows != 1 else ''} · about {guess.input_tokens:,} input + {guess.output_tokens:,} "
         f"output tokens · {_estimated_cost(guess)}")
    _confirm_spend(guess, provider, args.yes)
    if args.resume is None:
        concurrency = batches.clamp_concurrency(args.concurrency or 4)
        batch_id = batches.create(store, file_name=path.name, table=table, rows=rows,
                                  provider=provider, concurrency=concurrency,
                                  length_control=args.length_control is not False,
                                  defaults=defaults)
        _say(f"batch #{batch_id}: {len(briefs)} rows from {path.name} with {provider.label()}")
    concurrency = args.concurrency
    if concurrency and provider.max_streams < concurrency:
        _say(f"note: {provider.name} writes at most {provider.max_streams} at once")
    printer = _BatchPrinter(len(briefs), quiet=args.quiet)
    run = batches.BatchRun(settings, batch_id, Registry(), provider, concurrency=concurrency,
                           length_control=args.length_control, on_row=printer.row)
    printer.run = run
    try:
        run.start()
    except BatchError as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    interrupted = False
    try:
        while not run.done.wait(0.5):
            printer.draw(store)
    except KeyboardInterrupt:
        interrupted = True
        _say("\nstopping: the rows in flight are saved as stopped…")
        run.stop(wait_s=30)
    printer.draw(store, final=True)
    found = batches.counts(batches.rows(store, batch_id))
    cost = ", ".join(f"{v:.4f} {c}" for c, v in found["cost"].items() if c != "local") or "0"
    _say(f"batch #{batch_id}: {found['completed']} completed, {found['failed']} failed of "
         f"{found['valid']} rows · {found['words']:,} words · cost {cost} · "
         f"{run.backoff.hits} rate-limit answers · {_elapsed(time.monotonic() - printer.t0)}")
    _batch_output(store, batch_id, args.out)
    if run.error:
        _say(f"error: {run.error}")
        return EXIT_FAILED
    if interrupted or (run.note or "").startswith("interrupted"):
        _say(f"paused; go on with: python -m writer batch --resume {batch_id}")
        return EXIT_INTERRUPTED
    if (run.note or "").startswith("provider_refused"):
        _say(f"error: paused: the provider refused a request ({run.note.split(': ', 1)[-1]}); "
             f"fix it, then: python -m writer batch --resume {batch_id}")
        return EXIT_FAILED
    if found["failed"]:
        rows_word = "row" if found["failed"] == 1 else "rows"
        _say(f"{found['failed']} {rows_word} failed (see the error column); write them again with: "
             f"python -m writer batch --resume {batch_id}")
        return EXIT_FAILED
    return EXIT_OK


def cmd_check(args) -> int:
    settings = load_settings()
    store = _open_store()
    provider = choose_provider(settings, args.provider, args.model)
    from writer.providers.base import resolve_model

    provider = resolve_model(provider)
    plan = checks.Plan(runs=args.runs, prompt_set=args.prompt_set,
                       levels=checks.parse_levels(args.concurrency))
    guess = checks.estimate(plan, provider, settings, store)
    cost = ("free (local model)" if not guess.paid else "cost unknown (no price)"
            if guess.cost is None else f"at most {guess.cost:.4f} {guess.currency}")
    _say(f"checking {provider.label()}: {guess.requests} requests, about "
         f"{guess.input_tokens:,} input + at most {guess.output_tokens:,} output tokens · {cost}")
    if guess.paid and provider.kind != "local" and not args.yes:
        if not (sys.stdin is not None and sys.stdin.isatty()):
            raise CliError("not sending requests to a paid provider without confirmation: add --yes")
        sys.stderr.write("run the check? [y/N] ")
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            raise CliError("not started", EXIT_FAILED)
    check = checks.Check(settings, provider, plan)
    done = threading.Event()
    outcome: dict = {}

    def work() -> None:
        try:
            outcome["report"] = check.run()
        except BaseException as exc:  # a bug: reported below in one line
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="writer-check", daemon=True).start()
    tty = sys.stderr.isatty()
    interrupted = False
    try:
        while not done.wait(0.3):
            if tty:
                sys.stderr.write(f"\r\x1b[K[{check.done}/{check.total}] {check.phase}")
                sys.stderr.flush()
    except KeyboardInterrupt:
        interrupted = True
        check.cancel()
        if not done.wait(30):
            raise CliError("cancelled, but a request did not close within 30 s; nothing saved",
                           EXIT_INTERRUPTED) from None
    if tty:
        sys.stderr.write("\r\x1b[K")
    if "error" in outcome:
        raise outcome["error"]
    report = outcome["report"]
    report_id = checks.save(store, report)
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(format_check(report))
    _say(f"saved as check #{report_id}")
    if interrupted or report["status"] == CheckStatus.CANCELLED:
        _say("cancelled: the figures above cover what was measured")
        return EXIT_INTERRUPTED
    return EXIT_FAILED if report["status"] == CheckStatus.FAILED else EXIT_OK


CHECK_LABELS = {"connect_ms": "connection set-up", "ttft_ms": "time to first text (p95)",
                "interruption_rate": "interruptions (gaps > 5 s)", "itl_cv": "inter-token CV"}


def format_check(report: dict) -> str:
    """The report as a table for a terminal."""
    def ms(value) -> str:
        return "-" if value is None else f"{value:,.0f} ms" if value >= 10 else f"{value:.1f} ms"

    grades = report.get("grades", {})
    lines = [f"provider check: {report['provider']} · {report.get('model') or '?'}"
             + (f" ({report['base_url']})" if report.get("base_url") else "")
             + f" · {report['runs']} runs, {report['prompt_set']} prompts · {report['status']}"]
    price = report.get("price")
    if price is None:
        lines.append("price: unknown (add one on the Settings page)")
    elif price["currency"] == "local":
        lines.append("price: free (local model)")
    else:
        lines.append(f"price: {price['input_per_1m']:g} / {price['output_per_1m']:g} "
                     f"{price['currency']} per 1M input / output tokens")
    rows = []
    connect = report.get("connect")
    rows.append(("connection set-up", "-" if report.get("connect_ms") is None else
                 f"{ms(report['connect_ms'])} (p95 {ms(connect['p95'])}, max {ms(connect['max'])})"
                 if connect else ms(report.get("connect_ms")), "connect_ms", "< 2000 / < 1000 ms"))
    ttft = report.get("ttft_ms")
    rows.append(("time to first text", f"p50 {ms(ttft['p50'])} · p95 {ms(ttft['p95'])} · "
                 f"max {ms(ttft['max'])}" if ttft else "-", "ttft_ms", "p95 < 3000 / < 1500 ms"))
    rows.append(("inter-token interval", f"mean {ms(report.get('itl_mean_ms'))} · p95 "
                 f"{ms(report.get('itl_p95_ms'))} · longest {ms(report.get('max_gap_ms'))}",
                 None, ""))
    cv = report.get("itl_cv")
    rows.append(("inter-token CV", "-" if cv is None else f"{cv:.2f}", "itl_cv", "< 0.5 / < 0.3"))
    rate = report.get("interruption_rate")
    rows.append(("interruptions (> 5 s)", "-" if rate is None else
                 f"{report['interruptions']} ({rate * 100:.2f} %)", "interruption_rate",
                 "< 1 % / < 0.1 %"))
    speed = report.get("tokens_per_s")
    rows.append(("tokens/s", "-" if speed is None else f"{speed:.1f}", None, ""))
    for level, result in (report.get("concurrency") or {}).items():
        passing, excellent = checks._level_thresholds(int(level))
        rows.append((f"{level} streams at once", f"{result['success_rate'] * 100:.0f} % ok · TTFT "
                     f"p95 {ms(result['ttft_p95_ms'])}", f"concurrency_{level}",
                     f">= {passing * 100:.0f} % / >= {excellent * 100:.0f} %"))
    lines.append("")
    lines.append(f"{'metric':<24} {'value':<44} {'grade':<10} pass / excellent")
    for name, value, key, thresholds in rows:
        lines.append(f"{name:<24} {value:<44} {grades.get(key, '') if key else '':<10} "
                     f"{thresholds}")
    usage = report.get("usage") or {}
    cost = usage.get("cost")
    lines.append("")
    lines.append(f"this check: {usage.get('input_tokens', 0):,} input + "
                 f"{usage.get('output_tokens', 0):,} output tokens · "
                 + ("cost unknown" if cost is None else "free" if usage.get("currency") == "local"
                    else f"{cost:.4f} {usage.get('currency')}")
                 + f" · {report.get('duration_s', 0):.1f} s")
    for error in report.get("errors", [])[:5]:
        lines.append(f"note: {error}")
    return "\n".join(lines)


def _estimated_cost(guess) -> str:
    if guess.free:
        return "free (local model)"
    if guess.cost is None:
        return "cost unknown (the model has no price: add one on the Settings page)"
    return f"about {guess.cost:.4f} {guess.currency}"


def _confirm_spend(guess, provider, yes: bool) -> None:
    """A paid provider: confirm the estimate (and a budget it would pass) first."""
    if guess.free or provider.kind == "local":
        return
    reason = "the estimated cost"
    if guess.over_budget:
        budget = guess.budget
        reason = (f"this month's {budget['currency']} budget: {budget['spent']:.2f} spent of "
                  f"{budget['budget']:.2f}, and this batch adds about {guess.cost:.2f}")
        _say(f"warning: this batch would pass {reason}")
    if yes:
        return
    if not (sys.stdin is not None and sys.stdin.isatty()):
        raise CliError(f"not starting without confirmation of {reason}: add --yes")
    sys.stderr.write("start the batch? [y/N] ")
    sys.stderr.flush()
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise CliError("not started", EXIT_FAILED)


def _batch_output(store: Store, batch_id: int, out: str | None) -> None:
    if out:
        fmt = Path(out).suffix.lower().lstrip(".")
        if fmt not in batches.EXPORTS:
            raise CliError(f"--out {out}: use a .csv, .xlsx or .zip file name")
        data, _, _ = batches.export(store, batch_id, fmt)
        _write_file(Path(out), data)
        _say(f"results saved to {out}")
        return
    data, _, _ = batches.export(store, batch_id, "csv")
    sys.stdout.write(data.decode("utf-8-sig"))  # no BOM in a pipe
    sys.stdout.flush()


def _elapsed(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class _BatchPrinter:
    """Progress on stderr: a bar redrawn in place on a terminal; one line per row
    otherwise (and above the bar)."""

    def __init__(self, total: int, quiet: bool):
        self.total, self.quiet = total, quiet
        self.tty = sys.stderr.isatty()
        self.t0 = time.monotonic()
        self.run = None
        self.drawn = 0.0
        self.lock = threading.Lock()

    def row(self, number: int, handle) -> None:
        if self.quiet:
            return
        finished = handle.finished
        status = finished.status if finished else "error"
        line = (f"row {number}: #{handle.article_id} {status} · {handle.words}/"
                f"{handle.target_words} words · {_one_line(handle.topic, 40)}")
        if finished is not None and finished.error and status != Status.COMPLETED:
            line += f" · {_one_line(finished.error, 80)}"
        with self.lock:
            sys.stderr.write(("\r\x1b[K" if self.tty else "") + line + "\n")
            sys.stderr.flush()

    def draw(self, store: Store, final: bool = False) -> None:
        if self.quiet or not self.tty or self.run is None:
            return
        progress = self.run.progress(batches.rows(store, self.run.batch_id))
        done, total = progress.ended, progress.total
        width = 24
        filled = int(width * done / total) if total else width
        cost = " ".join(f"{v:.4f} {c}" for c, v in progress.cost.items() if c != "local")
        eta = f" · ETA {_elapsed(progress.eta_s)}" if progress.eta_s is not None and not final \
            else ""
        throttled = f" · slowed ({progress.limit} at once)" if \
            progress.limit < self.run.concurrency else ""
        with self.lock:
            sys.stderr.write(f"\r\x1b[K[{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
                             f"rows · {progress.words:,} words" + (f" · {cost}" if cost else "")
                             + eta + throttled + ("\n" if final else ""))
            sys.stderr.flush()


COMMANDS = {"batch": cmd_batch, "brand": cmd_brand, "check": cmd_check, "write": cmd_write, "continue": cmd_continue, "history": cmd_history,
            "show": cmd_show, "usage": cmd_usage, "delete": cmd_delete, "revise": cmd_revise,
            "versions": cmd_versions, "choose": cmd_choose}


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
    except CliError as exc:
        _say(f"error: {exc}")
        return exc.code
    except (BriefError, SettingsError, PromptError, PriceFileError, ProviderChoiceError,
            LocalModelError, JobError, BatchError, SheetError, checks.CheckError,
            BrandError) as exc:
        _say(f"error: {exc}")
        return EXIT_USAGE
    except StorageError as exc:
        _say(f"error: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        _say("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_FAILED
    except Exception as exc:  # a bug: one line here, the traceback in the log
        try:
            line = logs.log_exception(f"python -m writer {command} failed", exc)
        except Exception:
            line = f"unexpected {type(exc).__name__}"
        _say(f"error: {line}")
        return EXIT_FAILED
