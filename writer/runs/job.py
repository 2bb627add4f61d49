"""One article end to end: row → engine → periodic draft saves → final row.

Every caller (Write page, CLI, batch) runs a `Job` and consumes its events; the
row is saved the same way whoever the caller is. The `finally` in `run()` is
where a stopped or interrupted article is saved: closing the generator (Ctrl-C,
a Streamlit rerun) closes the provider stream first, then saves. `cancel()` does
the same from another thread (the Stop button).

While it runs, the job's row is tracked by the registry of live runs (registry.py):
it has a heartbeat, so a row that stops beating is recognised as abandoned by any
process, and a row deleted by anyone (another tab, `python -m writer delete`) stops
the job that writes it. Whatever happens once the row exists (a provider failure, a
broken providers file, a bug), the row ends with a final status and leaves the
registry. If the
database refuses the final save, the text is written to a file next to it and the
caller gets one `StorageError` line saying where: an article is never lost.

A job acts for a person (`actor`, writer/access.py): a new article is theirs (its
`author`); going on with an existing one (Continue, a batch row resumed) and deleting
one is for its author or an admin (AccessDenied, before anything is sent).
"""
from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterator

from writer import logs
from writer.access import Actor
from writer.brief import Brief, stored_keywords
from writer.config import Settings
from writer.errors import UserError
from writer.generation.counting import count_words, warm_up
from writer.generation.engine import Generation, Request
from writer.generation.events import Delta, Finished, Outlined, Usage
from writer.generation.length import outcome
from writer.generation.plan import plan_for
from writer.generation.prompts import PromptSet, default_prompts
from writer.generation.retry import RetryPolicy
from writer.kinds import CONTINUABLE, ErrorKind, Status
from writer.providers.base import Provider
from writer.providers.choice import choose_provider, failover_chain, for_language, prompts_dir, resolve_model
from writer.providers.failures import Failure
from writer.runs import streams
from writer.runs.registry import JobError, acting, shared
from writer.storage import brands, versions
from writer.storage.prices import price_table
from writer.storage.store import StorageError, Store, require_author
from writer.storage.usage import require_within_budget

DRAFT_INTERVAL_S = 2.0
FINAL_SAVE_TRIES = 4


__all__ = ["Job", "JobError", "can_continue", "delete_article", "running_job"]


class Job:
    def __init__(self, brief: Brief, settings: Settings, *, provider: Provider | None = None,
                 length_control: bool = True,
                 prompts: PromptSet | None = None, draft_interval_s: float = DRAFT_INTERVAL_S,
                 article: dict | None = None, batch: tuple[int, int] | None = None,
                 backoff=None, actor: Actor | None = None):
        logs.configure(settings.db_path, settings.secret_values())
        self.actor = acting(settings, actor)  # who acts (registry.acting)
        if article is not None:  # going on with an article: its author's or an admin's
            require_author(self.actor, article.get("author"), f"continue article #{article['id']}")
        # whose article it is: the sidebar's running list, Stop (registry.Handle.author)
        self.author = article.get("author") if article else self.actor.name
        warm_up()  # token estimates are needed when it ends, stopped or not
        self.provider = for_language(resolve_model(provider or choose_provider(settings)),
                                     brief.language)  # local: that language's model
        # a hard cap reached (the team's, or the actor's own): refused
        require_within_budget(None, settings, self.provider, actor=self.actor)
        self.requested_language = brief.language
        languages = self.provider.languages
        if languages and brief.language not in languages:
            # e.g. the local demo model writes English only: ask for what it can do,
            # and record the truth in the row.
            brief = replace(brief, language=languages[0])
        self.brief = brief
        self.settings = settings
        self.prompts = prompts or default_prompts(prompts_dir(self.provider))
        # What the engine asks (writer/generation/plan.py): messages, budget, length plan.
        self.plan = plan_for(brief, self.prompts, provider_kind=self.provider.kind,
                             max_output_tokens=settings.max_output_tokens,
                             length_control=length_control)
        self.length = self.plan.length  # None: free-form
        self.max_tokens = self.plan.max_tokens  # the first request's bound
        self.outline: str | None = None
        self.draft_interval_s = draft_interval_s
        self.article = article  # the row being continued, if any
        self.prefix = article["content"] if article else ""
        self.prefix_words = count_words(self.prefix)
        self.article_id: int | None = article["id"] if article else None
        self.generation: Generation | None = None
        self.cost: float | None = None
        self.currency: str | None = None
        self.saved = threading.Event()  # set once the final row is written
        self.cancel_requested = False
        self.deleted = False  # its row was deleted while it ran (the job stopped itself)
        self.recovery_file: Path | None = None  # where the text went if the DB refused it
        self.queued = False  # its row was created `queued` (queue()); run() starts it
        self.on_cancel = None  # called by cancel(), e.g. by the worker registry
        self.batch = batch  # (batch id, row number) of a batch row (writer/runs/batch.py)
        self.backoff = backoff  # a backoff.SharedBackoff shared with the rest of its batch
        self.version_kind = "draft"  # what its text is as a version (writer/storage/versions.py)
        self.slot_taken = False  # its provider's slot is taken (writer/runs/streams.py)
        self.on_wait_for_slot = None  # called once if it waits for a slot (the CLI says so)

    @classmethod
    def continuing(cls, article_id: int, settings: Settings, *, actor: Actor,
                   provider: Provider | None = None, **kwargs) -> "Job":
        """A job that appends to a stopped, truncated or failed article (the actor's own,
        or any for an admin: AccessDenied otherwise)."""
        store = Store(settings.database)
        try:
            row = store.get(article_id)
            kit = brands.get(store, row["brand"]) if row and row.get("brand") else None
        finally:
            store.close()
        if row is None:
            raise JobError(f"there is no article #{article_id}")
        require_author(actor, row.get("author"), f"continue article #{article_id}")
        if can_continue(row) is False and row["status"] in CONTINUABLE and row["content"]:
            raise JobError(f"article #{article_id} already has {row['words']} of its "
                           f"{row['target_words']} words; write a new one instead")
        if row["status"] not in CONTINUABLE or not row["content"]:
            raise JobError(f"article #{article_id} is {row['status']}; only stopped, truncated or "
                           "failed articles with text can be continued")
        brief = Brief(topic=row["topic"], content_type=row["content_type"], style=row["style"],
                      target_words=row["target_words"], language=row["language"],
                      audience=row["audience"] or "", keywords=stored_keywords(row["keywords"]),
                      brand=kit)
        kwargs.setdefault("length_control", row.get("length_control") != 0)
        return cls(brief, settings, provider=provider, article=row, actor=actor, **kwargs)

    @property
    def words(self) -> int:
        # The engine counts the article as it grows (prefix included): one count, not two.
        return self.generation.counter.words if self.generation else self.prefix_words

    @property
    def text(self) -> str:
        return self.prefix + (self.generation.text if self.generation else "")

    def cancel(self, wait_s: float = 2.0) -> bool:
        """Stop from another thread; True once the partial article is saved."""
        self.cancel_requested = True
        if self.on_cancel is not None:  # e.g. a queued job: its worker runs it at once
            self.on_cancel()
        if self.generation is None:  # not started: run() will stop at once
            return self.saved.wait(wait_s) if wait_s else False
        self.generation.cancel()
        return self.saved.wait(wait_s) if wait_s else self.saved.is_set()

    def _on_deleted(self) -> None:
        """Its row was deleted (another tab, the CLI): stop writing it."""
        self.deleted = True
        self.cancel(wait_s=0)

    def queue(self) -> int:
        """Create the article's row as `queued` (a worker starts it later,
        writer/runs/registry.py): from now on it has an id, a heartbeat and a Stop."""
        store = Store(self.settings.database)
        try:
            self._open_row(store, Status.QUEUED)
        finally:
            store.close()
        return self.article_id

    def _open_row(self, store: Store, status: Status) -> None:
        if self.article is None:
            self.article_id = store.create_article(self.brief, provider=self.provider.name,
                                                   model=self.provider.model,
                                                   max_tokens=self.max_tokens, status=status,
                                                   batch=self.batch, author=self.author)
        elif not store.reopen(self.article_id, provider=self.provider.name,
                              model=self.provider.model, status=status):
            raise JobError(f"there is no article #{self.article_id} (it was deleted)")
        self._register(status)

    def _register(self, status: Status) -> None:
        """Its row exists: the registry knows it is being written, and it beats."""
        shared(self.settings.database).track(self.article_id, self._on_deleted, job=self)
        self.queued = status == Status.QUEUED

    def _begin(self, store: Store) -> None:
        """Its row starts streaming once its provider has a free slot across every process
        (writer/runs/streams.py; a worker job's registry took it already): a queued row
        (unless deleted meanwhile), or a new one, saved `queued` while it waits."""
        if not self.queued:
            self._open_row(store, Status.QUEUED)
        if not self.slot_taken:
            streams.wait_for_slot(self, on_wait=self.on_wait_for_slot)
        self.queued = False
        if not store.start(self.article_id):
            self.deleted = True
            self._forget()
            raise JobError(f"article #{self.article_id} was deleted before it started")

    def _forget(self) -> None:
        shared(self.settings.database).untrack(self.article_id)

    def run(self) -> Iterator:
        """Yield the engine's events while keeping the `articles` row up to date."""
        store = Store(self.settings.database)
        try:
            self._begin(store)
        except BaseException:
            store.close()
            raise
        refusal: Exception | None = None
        try:  # reads the providers file, which may have broken since the job was built
            chain = failover_chain(self.settings, self.provider)
        except Exception as exc:  # the row is streaming: it ends failed below, saying why
            chain, refusal = [self.provider], exc
        self.generation = Generation(
            Request(self.plan, self.provider, RetryPolicy.from_settings(self.settings),
                    failover=chain[1:], prefix=self.prefix, backoff=self.backoff))
        if self.cancel_requested:
            self.generation.cancel()
        events = self.generation.events()
        last_save = time.monotonic()
        try:
            if refusal is not None:
                raise refusal
            for event in events:
                if isinstance(event, Delta):
                    now = time.monotonic()
                    if now - last_save >= self.draft_interval_s:
                        self._save_draft(store)
                        last_save = now
                elif isinstance(event, Outlined):
                    self.outline = event.outline.as_markdown()
                elif isinstance(event, Finished):
                    self._save_final(store, event.status, event.finish_reason, event.error,
                                     event.usage, event.error_kind)
                yield event
        except StorageError:
            raise
        except Exception as exc:  # a refusal (a broken providers file) or a bug: end failed
            message = str(exc) if isinstance(exc, UserError) else \
                logs.log_exception(f"article #{self.article_id} failed", exc)
            generation = self.generation
            generation.metrics.ended = generation.metrics.ended or time.monotonic()
            finished = Finished(Status.FAILED, None, message, generation.usage(),
                                generation.metrics, generation.served_provider,
                                Failure(ErrorKind.OTHER, message, False), generation.retries,
                                generation.resumes, generation.fallback,
                                "→".join(generation.served_by))
            self._save_final(store, finished.status, None, message, finished.usage,
                             ErrorKind.OTHER)
            yield finished
        finally:
            try:
                if not self.saved.is_set():
                    events.close()  # closes the provider connection before saving
                    self._save_final(store, Status.STOPPED, None, None, self.generation.usage())
            finally:
                self._forget()
                store.close()

    def _save_draft(self, store: Store) -> None:
        try:
            store.save_draft(self.article_id, self.text, self.words)
        except StorageError as exc:  # the next draft or the final save tries again
            logs.logger.warning("draft of article #%s not saved: %s", self.article_id, exc)

    def _save_final(self, store: Store, status: Status, finish_reason: str | None,
                    error: str | None, usage: Usage, error_kind: ErrorKind | None = None) -> None:
        generation = self.generation
        metrics = generation.metrics
        if metrics.ended is None:
            metrics.ended = time.monotonic()
        served = generation.served_provider
        price = price_table(self.settings.prices_file, store.price_edits()).lookup(
            served.model, served.name)
        self.cost = price.cost(usage.input_tokens, usage.output_tokens) if price else None
        self.currency = price.currency if price else None
        # This run's tokens and cost: the ledger adds them to what the article already
        # cost (a Continue's earlier runs, title suggestions), in the save's transaction.
        charge = versions.Charge(usage.input_tokens, usage.output_tokens, self.cost,
                                 self.currency, usage.source)
        retries, resumes, fallback = generation.retries, generation.resumes, generation.fallback
        served_by = "→".join(generation.served_by) or served.name
        previous = self.article
        if previous:  # a continuation adds to what the article already had
            retries += previous.get("retries") or 0
            resumes += previous.get("resumes") or 0
            fallback = fallback or bool(previous.get("fallback"))
            if previous.get("served_by") and previous["served_by"] != served_by:
                served_by = f"{previous['served_by']}→{served_by}"
        fields = dict(
            status=status,
            content=self.text,
            words=self.words,
            provider=served.name,  # who served the text, so Usage by provider is right
            model=served.model,
            price_input_per_1m=price.input_per_1m if price else None,
            price_output_per_1m=price.output_per_1m if price else None,
            ttft_ms=metrics.ttft_ms,
            duration_ms=metrics.duration_ms,
            tokens_per_s=metrics.tokens_per_s,
            itl_mean_ms=metrics.itl_mean_ms,
            itl_p95_ms=metrics.itl_p95_ms,
            itl_cv=metrics.itl_cv,
            max_gap_ms=metrics.max_gap_ms,
            finish_reason=finish_reason,
            error=error,
            error_kind=error_kind,
            retries=retries,
            resumes=resumes,
            fallback=int(fallback),
            served_by=served_by,
            length_control=int(self.length is not None),
            length_outcome=outcome(self.words, self.brief.target_words, self.length)
            if self.length else None,
            length_rounds=(previous.get("length_rounds") or 0 if previous else 0)
            + (generation.length_rounds + (len(generation.outline.sections)
                                           if generation.outline else 1)
               if self.length else 0),
            outline=self.outline or (previous.get("outline") if previous else None),
        )
        if self.text.strip():  # every text is a version; brand and keyword checks on it
            fields["checks"] = versions.checks_for(self.text, self.brief.brand,
                                                   self.brief.keywords)
        for attempt in range(FINAL_SAVE_TRIES):
            try:
                totals = self._record_version(
                    store, status, fields, charge, served,
                    previous.get("current_version") if previous else None)
                break
            except StorageError as exc:
                if attempt + 1 < FINAL_SAVE_TRIES:
                    time.sleep(0.25 * 2 ** attempt)  # the lock holder is usually gone by then
                    continue
                self.recovery_file = self._write_recovery_file()
                self.saved.set()
                raise StorageError(f"article #{self.article_id} could not be saved ({exc}); its "
                                   f"text is kept in {self.recovery_file}") from None
        if totals is not None:  # what the article cost, a Continue's earlier runs included
            self.cost, self.currency = totals["cost"], totals["currency"]
        self.saved.set()

    def _record_version(self, store: Store, status: Status, fields: dict,
                        charge: "versions.Charge", served: Provider,
                        number: int | None) -> dict | None:
        """The final save in one transaction (writer/storage/versions.py `save_run`):
        the article's `fields`, this run's text as its current version (the draft, or
        the version a Continue added to) and this run's charge on both — no text on an
        article deleted meanwhile. The article's totals after it (None: row gone)."""
        return versions.save_run(
            store, self.article_id, number, kind=self.version_kind, status=status,
            text=self.text if self.text.strip() else None, words=self.words,
            provider=served.name, model=served.model, charge=charge, fields=fields,
            author=self.actor.name)

    def _write_recovery_file(self) -> Path:
        """The text, where a person can find it, when the database refuses it."""
        folder = Path(self.settings.db_path).parent / "unsaved"
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        path = folder / f"article-{self.article_id}-{stamp}.md"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(self.text, encoding="utf-8")
        except OSError:  # the data folder itself is unwritable: use the temp folder
            import tempfile

            path = Path(tempfile.gettempdir()) / path.name
            path.write_text(self.text, encoding="utf-8")
        logs.logger.error("article #%s saved to %s instead of the database", self.article_id, path)
        return path


def can_continue(row: dict) -> bool:
    """Continue is offered for an article that stopped, failed or was truncated before
    its target (with length control off: whenever it has text), not for one already
    past its target."""
    if row["status"] not in CONTINUABLE or not row.get("content"):
        return False
    if row.get("length_control") == 0:
        return True
    return (row.get("words") or 0) < row["target_words"]


def running_job(settings: Settings, article_id: int) -> Job | None:
    """The job writing `article_id` in this process (the registry of live runs): a
    delete from this process stops it first; other processes learn of a delete
    through the heartbeat."""
    return shared(settings.database).job(article_id)


def delete_article(settings: Settings, article_id: int, wait_s: float = 5.0, *,
                   actor: Actor) -> bool:
    """Delete an article (its spend stays in Usage); a job still writing it in this
    process is stopped and its partial text saved first. Only its author or an admin
    may (AccessDenied, before anything is stopped). False when there is no such article."""
    store = Store(settings.database)
    try:
        row = store.get(article_id)
        if row is None:
            return False
        require_author(actor, row.get("author"), f"delete article #{article_id}")
        job = running_job(settings, article_id)
        if job is not None:
            job.deleted = True
            job.cancel(wait_s=wait_s)
        return store.delete(article_id, actor=actor)
    finally:
        store.close()
