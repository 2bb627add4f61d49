"""Commands that stream a text: `write` (and `write --variants`), `continue`, `revise`.

The text goes to stdout as it arrives; notices, progress and the closing figures to
stderr. A request refused before any text (storage.store.is_failed_request) ends with
only its error line, which says what to do: there is no article to give figures of.
Each acts as WRITER_USER (writer/storage/accounts.py `actor_for`), the author of what
it writes; continuing or revising is for the article's author or an admin.
"""
from __future__ import annotations

import sys
import time

from writer.brief import Brief
from writer.cli.brand import kit_named
from writer.cli.output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TRUNCATED,
    CliError,
    open_store,
    say,
)
from writer.config import load_settings
from writer.generation.events import Delta, Finished, Notice, Outlined
from writer.io.i18n import article_unit
from writer.kinds import NoticeKind, Status
from writer.providers.choice import choose_provider
from writer.runs.job import Job
from writer.runs.revisions import RevisionJob
from writer.runs.variants import gather as gather_variants
from writer.runs.variants import jobs_for as variant_jobs
from writer.runs.variants import tag as tag_variants
from writer.storage.accounts import actor_for
from writer.storage.store import is_failed_request


def cmd_write(args) -> int:
    kit = kit_named(open_store(), args.brand) if args.brand else None
    brief = Brief(topic=args.topic, content_type=args.content_type, style=args.style,
                  target_words=args.target_words, language=args.language,
                  audience=args.audience, keywords=args.keywords, brand=kit)
    settings = load_settings()
    provider = choose_provider(settings, args.provider, args.model)
    if args.variants is not None and args.variants != 1:
        return _write_variants(brief, settings, provider, args)
    job = Job(brief, settings, provider=provider, length_control=args.length_control,
              actor=actor_for(open_store(), settings))
    if job.brief.language != brief.language:
        say(f"note: {job.provider.name} writes {job.brief.language} only; the article will be in "
            f"{job.brief.language}")
    job.on_wait_for_slot = lambda: say(
        f"waiting: {job.provider.name} is writing {job.provider.max_streams} article(s) at "
        "once already (WRITER_MAX_STREAMS); this one starts when one ends")
    control = "held to 0.8–1.2×" if job.length else "free-form"
    say(f"writing with {job.provider.label()} · target {brief.target_words} "
        f"{article_unit(job.brief.language)} ({control})")
    return stream(job, args.quiet)


def _write_variants(brief: Brief, settings, provider, args) -> int:
    """N versions of the brief, one after the other, each streamed to stdout under a
    header; then gathered into one article whose versions they are (version 1 current)."""
    try:
        jobs = variant_jobs(brief, settings, args.variants, provider=provider,
                            length_control=args.length_control,
                            actor=actor_for(open_store(), settings))
    except ValueError as exc:
        raise CliError(str(exc)) from None
    store = open_store()
    ids = [job.queue() for job in jobs]
    tag_variants(store, ids)
    say(f"writing {len(jobs)} variants with {jobs[0].provider.label()} · target "
        f"{brief.target_words} {article_unit(jobs[0].brief.language)}")
    codes = []
    for number, job in enumerate(jobs, 1):
        sys.stdout.write(("\n" if number > 1 else "") + f"--- variant {number} of {len(jobs)} ---\n")
        code = stream(job, args.quiet)
        codes.append(code)
        if code == EXIT_INTERRUPTED:
            break  # Ctrl-C: the rest are not written
    for job in jobs[len(codes):]:  # not written (Ctrl-C): their queued rows go
        job.cancel(wait_s=0)
        list(job.run())
    article_id = gather_variants(store, ids[0])
    if article_id is None:
        raise CliError(f"the variants of #{ids[0]} could not be gathered", EXIT_FAILED)
    say(f"#{article_id}: {len(jobs)} variants kept as versions 1-{len(jobs)} (version 1 is "
        f"current); pick another with: python -m writer choose {article_id} N")
    return EXIT_OK if any(code == EXIT_OK for code in codes) else codes[-1]


def cmd_continue(args) -> int:
    settings = load_settings()
    provider = choose_provider(settings, args.provider, args.model) if (
        args.provider or args.model) else None
    extra = {} if args.length_control is None else {"length_control": args.length_control}
    job = Job.continuing(args.id, settings, provider=provider,
                         actor=actor_for(open_store(), settings), **extra)
    say(f"continuing #{args.id} ({job.words}/{job.brief.target_words} "
        f"{article_unit(job.brief.language)}) with "
        f"{job.provider.label()}")
    return stream(job, args.quiet)


def cmd_revise(args) -> int:
    settings = load_settings()
    provider = choose_provider(settings, args.provider, args.model) if (
        args.provider or args.model) else None
    job = RevisionJob(args.id, settings, instruction=args.instruction, preset=args.preset,
                      section=args.section, provider=provider, length_control=args.length_control,
                      actor=actor_for(open_store(), settings))
    part = f"section {args.section}" if args.section else "the whole article"
    say(f"revising #{args.id} ({part}) with {job.provider.label()}: {job.instruction}")
    code = stream(job, args.quiet)
    if code == EXIT_OK:
        say(f"version {job.version_number} is now current; the earlier ones are kept "
            f"(python -m writer versions {args.id})")
    return code


def stream(job: Job, quiet: bool) -> int:
    """Print a job's text to stdout as it arrives; notices and stats to stderr."""
    show_progress = not quiet and sys.stderr.isatty()
    counted = article_unit(job.brief.language)  # 字 for a Chinese article, words for English
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
                    sys.stderr.write(f"\x1b7\r[{job.words}/{job.brief.target_words} {counted}]\x1b8")
                    last_progress = now
            elif isinstance(event, Notice) and (event.kind, event.attempt) != announced:
                announced = (event.kind, event.attempt)  # notices repeat; say each once
                if event.kind == NoticeKind.RETRYING:
                    say(f"{event.message}; retrying in {event.wait_s:.0f} s "
                        f"(attempt {event.attempt} of {event.max_attempts})")
                elif event.kind == NoticeKind.SECTION:
                    say(f"section {event.attempt}/{event.max_attempts}: {event.message}")
                else:
                    say(event.message)
            elif isinstance(event, Outlined):
                say("outline:\n" + event.outline.as_markdown())
            elif isinstance(event, Finished):
                return _report(job, event)
    except KeyboardInterrupt:
        events.close()  # closes the provider connection, then saves the partial text
        say(f"\ninterrupted: partial article saved as #{job.article_id} ({job.words} {counted}); "
            f"resume it with: python -m writer continue {job.article_id}")
        return EXIT_INTERRUPTED
    return EXIT_FAILED


def _report(job, finished: Finished) -> int:
    if is_failed_request({"status": finished.status, "words": job.words, "content": job.text}):
        # Refused before any text: no article, so no figures of one; only the error and
        # what to do (its message says), as the Write page shows it.
        say(f"error: {finished.error}")
        return EXIT_FAILED
    sys.stdout.write("\n")
    sys.stdout.flush()
    usage, metrics = finished.usage, finished.metrics
    cost = ("unpriced" if job.cost is None else "0 (local model)" if job.currency == "local"
            else f"{job.cost:.6f} {job.currency}")
    ttft = f"{metrics.ttft_ms:.0f} ms" if metrics.ttft_ms is not None else "-"
    rate = f"{metrics.tokens_per_s:.1f} tokens/s" if metrics.tokens_per_s else "– tokens/s"
    which = f"#{job.article_id}" + (f" version {job.version_number}"
                                     if getattr(job, "version_number", None) else "")
    say(f"{which} {finished.status} · {job.words}/{job.brief.target_words} "
        f"{article_unit(job.brief.language)} · "
        f"tokens {usage.input_tokens} in / {usage.output_tokens} out ({usage.source}) · "
        f"cost {cost} · first token {ttft} · total {metrics.duration_ms / 1000:.1f} s · {rate}")
    if finished.length_outcome:
        ratio = job.words / job.brief.target_words
        rounds = finished.length_rounds
        say(f"length: {finished.length_outcome.replace('_', ' ')} ({ratio:.2f}× the target, "
            f"{rounds} round{'s' if rounds != 1 else ''})")
    _say_checks(job.article_id)
    if finished.status == Status.COMPLETED:
        return EXIT_OK
    if finished.status == Status.STOPPED:
        if job.deleted:
            say(f"article #{job.article_id} was deleted while it was being written; stopped "
                "(its tokens and cost still count in usage)")
        elif getattr(job, "stopped_elsewhere", False):  # Stop in the app (writer/runs/remote.py)
            say(f"stopped from another process: partial article saved as #{job.article_id}; "
                f"resume it with: python -m writer continue {job.article_id}")
        return EXIT_INTERRUPTED
    say(f"error: {finished.error}")
    if finished.status == Status.TRUNCATED:
        say(f"continue it with: python -m writer continue {job.article_id}")
    return EXIT_TRUNCATED if finished.status == Status.TRUNCATED else EXIT_FAILED


def _say_checks(article_id: int | None) -> None:
    """One stderr line per problem the article's brand / keyword check found."""
    row = open_store().get(article_id) if article_id else None
    found = (row or {}).get("checks")  # decoded by the store
    if not isinstance(found, dict) or found.get("passed", True):
        return
    terms: dict[str, list[int]] = {}
    for hit in found.get("banned_found", []):
        terms.setdefault(hit["term"], []).append(hit["start"])
    for term, starts in terms.items():
        say(f"check: banned word «{term}» at character{'s' if len(starts) > 1 else ''} "
            f"{', '.join(map(str, starts))}")
    for term in found.get("required_missing", []):
        say(f"check: required term missing: «{term}»")
    for term in found.get("keywords_missing", []):
        say(f"check: keyword missing: «{term}»")
