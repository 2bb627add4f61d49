"""`batch FILE` and `batch --resume ID`: one article per row of a CSV or Excel file,
progress on stderr, the results as CSV on stdout or a file (--out). It acts as
WRITER_USER (writer/storage/accounts.py `actor_for`): a new batch is theirs, and
resuming one is for its author or an admin."""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from writer.brief import Brief, stored_keywords
from writer.cli.brand import kit_named
from writer.cli.output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    CliError,
    ask,
    elapsed,
    is_yes,
    one_line,
    open_store,
    read_file,
    say,
    write_file,
)
from writer.config import load_settings
from writer.io.i18n import article_unit
from writer.io.sheet import SheetError, read_table
from writer.io.sheet import briefs as check_rows
from writer.kinds import Status
from writer.providers.base import ProviderChoiceError
from writer.providers.choice import choose_provider
from writer.runs import batch as batches
from writer.runs.batch import MAX_CONCURRENCY, BatchError
from writer.runs.registry import shared
from writer.storage import brands as brand_kits
from writer.storage.accounts import actor_for
from writer.storage.store import Store, require_author


def cmd_batch(args) -> int:
    settings = load_settings()
    store = open_store()
    actor = actor_for(store, settings)
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
        require_author(actor, batch.get("author"), f"resume batch #{args.resume}")
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
            say(f"note: resuming batch #{batch_id} from its saved rows; {args.file} is not read")
        say(f"batch #{batch_id} ({batch['file_name']}): {len(todo)} of {batch['valid_rows']} "
            f"rows left to write with {provider.label()}")
        if not todo:
            say("nothing left to write")
            _batch_output(store, batch_id, args.out)
            return EXIT_OK
        briefs = [Brief(**{**r["brief"], "keywords": stored_keywords(r["brief"]["keywords"])})
                  for r in todo]
    else:
        path = Path(args.file)
        data = read_file(path)
        defaults = {"content_type": args.content_type, "style": args.style,
                    "length": args.target_words, "language": args.language,
                    "audience": args.audience}
        if args.brand:  # a kit that exists (one line, exit 2, otherwise)
            defaults["brand"] = kit_named(store, args.brand).name
        Brief(topic="defaults", content_type=args.content_type, style=args.style,
              target_words=args.target_words, language=args.language)  # checks the flags
        try:
            table = read_table(data, path.name)
        except SheetError as exc:
            raise CliError(str(exc)) from None
        rows = check_rows(table, defaults, brand_kits.listing(store))
        bad = [row for row in rows if not row.ok]
        for row in bad[:20]:
            say(f"row {row.number} (line {row.number + 1}) skipped: {row.error.replace('_', ' ')}"
                + (f" ({one_line(row.detail)})" if row.detail else ""))
        if len(bad) > 20:
            say(f"… and {len(bad) - 20} more rows with errors")
        briefs = [row.brief for row in rows if row.ok]
        if not briefs:
            raise CliError(f"no row of {path.name} can be written: fix the errors above")
        provider = choose_provider(settings, args.provider, args.model)
    if provider.languages:
        other = sum(brief.language not in provider.languages for brief in briefs)
        if other:
            say(f"note: {provider.name} writes {'/'.join(provider.languages)} only; {other} "
                f"row{'s' if other != 1 else ''} asking for another language will be written "
                f"in {provider.languages[0]}")
    guess = batches.estimate(briefs, provider, settings, store, actor=actor)
    say(f"{guess.rows} row{'s' if guess.rows != 1 else ''} · about {guess.input_tokens:,} input "
        f"+ {guess.output_tokens:,} output tokens · {_estimated_cost(guess)}")
    _confirm_spend(guess, provider, args.yes)
    if args.resume is None:
        concurrency = batches.clamp_concurrency(args.concurrency or 4)
        batch_id = batches.create(store, file_name=path.name, table=table, rows=rows,
                                  provider=provider, concurrency=concurrency,
                                  length_control=args.length_control is not False,
                                  defaults=defaults, actor=actor)
        say(f"batch #{batch_id}: {len(briefs)} rows from {path.name} with {provider.label()}")
    return _run(store, settings, batch_id, provider, len(briefs), args, actor)


def _run(store: Store, settings, batch_id: int, provider, total: int, args, actor) -> int:
    """Write the batch's rows, drawing progress, then print the results and the exit code."""
    concurrency = args.concurrency
    if concurrency and provider.max_streams < concurrency:
        say(f"note: {provider.name} writes at most {provider.max_streams} at once")
    printer = _BatchPrinter(total, quiet=args.quiet)
    run = batches.BatchRun(settings, batch_id, shared(settings.database), provider,
                           concurrency=concurrency, length_control=args.length_control,
                           on_row=printer.row, actor=actor)
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
        say("\nstopping: the rows in flight are saved as stopped…")
        run.stop(wait_s=30, actor=actor)
    printer.draw(store, final=True)
    found = batches.counts(batches.rows(store, batch_id))
    cost = ", ".join(f"{v:.4f} {c}" for c, v in found["cost"].items() if c != "local") or "0"
    say(f"batch #{batch_id}: {found['completed']} completed, {found['failed']} failed of "
        f"{found['valid']} rows · {_words(batches.words_by_unit(batches.rows(store, batch_id)))} · "
        f"cost {cost} · "
        f"{run.backoff.hits} rate-limit answers · {elapsed(time.monotonic() - printer.t0)}")
    _batch_output(store, batch_id, args.out)
    if run.error:
        say(f"error: {run.error}")
        return EXIT_FAILED
    if interrupted or (run.note or "").startswith("interrupted"):
        say(f"paused; go on with: python -m writer batch --resume {batch_id}")
        return EXIT_INTERRUPTED
    if (run.note or "").startswith("rate_limited"):
        say(f"error: paused: {run.note.split(': ', 1)[-1]}; wait a while (or lower --concurrency), "
            f"then: python -m writer batch --resume {batch_id}")
        return EXIT_FAILED
    if (run.note or "").startswith("provider_refused"):
        say(f"error: paused: the provider refused a request ({run.note.split(': ', 1)[-1]}); "
            f"fix it, then: python -m writer batch --resume {batch_id}")
        return EXIT_FAILED
    if found["failed"]:
        rows_word = "row" if found["failed"] == 1 else "rows"
        say(f"{found['failed']} {rows_word} failed (see the error column); write them again with: "
            f"python -m writer batch --resume {batch_id}")
        return EXIT_FAILED
    return EXIT_OK


def _words(by_unit: dict[str, int]) -> str:
    """Words written, each unit on its own: "5,200 字 + 800 words" (0 words: none yet)."""
    return " + ".join(f"{count:,} {counted}" for counted, count in by_unit.items()) or "0 words"


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
        say(f"warning: this batch would pass {reason}")
    if yes:
        return
    if not is_yes(ask("start the batch? [y/N] ",
                      f"not starting without confirmation of {reason}: add --yes")):
        raise CliError("not started", EXIT_FAILED)


def _batch_output(store: Store, batch_id: int, out: str | None) -> None:
    if out:
        fmt = Path(out).suffix.lower().lstrip(".")
        if fmt not in batches.EXPORTS:
            raise CliError(f"--out {out}: use a .csv, .xlsx or .zip file name")
        data, _, _ = batches.export(store, batch_id, fmt)
        write_file(Path(out), data)
        say(f"results saved to {out}")
        return
    data, _, _ = batches.export(store, batch_id, "csv")
    sys.stdout.write(data.decode("utf-8-sig"))  # no BOM in a pipe
    sys.stdout.flush()


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
                f"{handle.target_words} {article_unit(handle.job.brief.language)} · "
                f"{one_line(handle.topic, 40)}")
        if finished is not None and finished.error and status != Status.COMPLETED:
            line += f" · {one_line(finished.error, 80)}"
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
        eta = f" · ETA {elapsed(progress.eta_s)}" if progress.eta_s is not None and not final \
            else ""
        throttled = f" · slowed ({progress.limit} at once)" if \
            progress.limit < self.run.concurrency else ""
        with self.lock:
            sys.stderr.write(f"\r\x1b[K[{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
                             f"rows · {_words(progress.words_by_unit)}" + (f" · {cost}" if cost else "")
                             + eta + throttled + ("\n" if final else ""))
            sys.stderr.flush()
