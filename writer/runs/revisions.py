"""Revisions: a finished article rewritten by an instruction ("make it shorter",
"rewrite the second paragraph", "translate it"), whole or one section, streamed as
a new version through the one engine (retries, resume, length control, Stop, cost).

A `RevisionJob` is a `Job` whose text goes into a `versions` row instead of the
article's: while it streams, the article keeps its current text; when it completes,
the new version becomes current. Its tokens and cost are added to the article's, so
Usage and budgets count them. A stopped or failed revision stays a version (with its
partial text) that can be made current by hand (`versions.choose`). Revising an
article is for its author or an admin (AccessDenied, before anything is sent); the
version records who made it.
"""
from __future__ import annotations

import tomllib
from functools import lru_cache

from writer.access import Actor
from writer.brands import BrandError, BrandKit
from writer.brief import MAX_WORDS, MIN_WORDS, Brief, stored_keywords
from writer.config import Settings
from writer.generation.counting import count_words
from writer.generation.events import Usage
from writer.generation.prompts import PROMPTS_DIR, PromptError
from writer.generation.sections import Section, sections  # noqa: F401 (part of this module's API)
from writer.kinds import ACTIVE, ErrorKind, Status
from writer.providers.base import Provider
from writer.runs.job import Job, JobError, running_job
from writer.storage import brands as brand_store
from writer.storage import versions
from writer.storage.prices import price_table
from writer.storage.store import StorageError, Store, require_author

PRESETS = ("shorter", "longer", "casual", "formal", "cta", "translate")
MIN_SECTION_WORDS = 20  # a one-line section is still revised to a sensible length


@lru_cache(maxsize=2)
def revise_prompts(path=PROMPTS_DIR / "_revise.toml") -> dict:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PromptError(f"{path.name}: {exc}") from None
    for part in ("whole", "section", "presets"):
        if not isinstance(data.get(part), dict):
            raise PromptError(f"{path.name}: missing [{part}] table")
    return data


def instruction_for(preset: str | None, text: str | None, language: str) -> str:
    """The instruction sent: a preset's text (prompts/_revise.toml), the user's own
    text, or both (the user's after the preset)."""
    presets = revise_prompts()["presets"]
    parts = []
    if preset:
        if preset not in PRESETS:
            raise JobError(f"unknown preset {preset!r}; use one of: {', '.join(PRESETS)}")
        other = "English" if language == "zh" else "Simplified Chinese (简体中文)"
        parts.append(presets[preset].format(other_language=other).strip())
    if text and text.strip():
        parts.append(" ".join(text.split()))
    if not parts:
        raise JobError("say what to change: an instruction or a preset")
    return " ".join(parts)


def target_for(words: int, preset: str | None, source: str, out: str) -> int:
    """About as long as the text it replaces, shorter/longer by the preset's factor,
    and converted between 字 and words when it is translated."""
    factor = revise_prompts().get("length_factors", {}).get(preset or "", 1.0)
    target = words * factor
    if source != out:  # a Chinese character is about 0.55 English words
        target = target * 0.55 if source == "zh" else target / 0.55
    return int(min(MAX_WORDS, max(MIN_WORDS, round(target))))


class RevisionJob(Job):
    """One revision of article `article_id`, written into a new `versions` row."""

    def __init__(self, article_id: int, settings: Settings, *, actor: Actor,
                 instruction: str | None = None,
                 preset: str | None = None, section: int | None = None,
                 provider: Provider | None = None, length_control: bool = True,
                 brand: BrandKit | None = None, draft_interval_s: float | None = None):
        store = Store(settings.database)
        try:
            row = store.get(article_id)
            if row is None:
                raise JobError(f"there is no article #{article_id}")
            require_author(actor, row.get("author"), f"revise article #{article_id}")
            if row["status"] in ACTIVE or running_job(settings, article_id) is not None:
                raise JobError(f"article #{article_id} is still being written; revise it "
                               "when it has ended")
            base = row["content"] or ""
            if not base.strip():
                raise JobError(f"article #{article_id} has no text to revise")
            if brand is None and row.get("brand"):
                brand = _kit(store, row["brand"])
        finally:
            store.close()
        parts = sections(base)
        if section is not None and not 1 <= section <= len(parts):
            raise JobError(f"article #{article_id} has {len(parts)} sections; choose 1 to "
                           f"{len(parts)}, not {section}")
        out_language = row["language"]
        if preset == "translate":
            out_language = "en" if row["language"] == "zh" else "zh"
        replaced = parts[section - 1].text(base) if section else base
        target = target_for(max(count_words(replaced), MIN_SECTION_WORDS if section else MIN_WORDS),
                            preset, row["language"], out_language)
        brief = Brief(topic=row["topic"], content_type=row["content_type"], style=row["style"],
                      target_words=target, language=out_language,
                      audience=row["audience"] or "", keywords=stored_keywords(row["keywords"]),
                      brand=brand)
        extra = {} if draft_interval_s is None else {"draft_interval_s": draft_interval_s}
        super().__init__(brief, settings, provider=provider, length_control=length_control,
                         actor=actor, **extra)
        self.author = row.get("author")  # whose article it is (registry.Handle.author)
        self.instruction = instruction_for(preset, instruction, row["language"])  # as sent
        # as kept and shown: "[shorter] 提到早鸟价" (the pages show the preset's label)
        self.label = " ".join(part for part in (f"[{preset}]" if preset else "",
                                               " ".join((instruction or "").split())) if part)
        self.preset = preset
        self.section = section
        self.base = base
        self.base_row = row
        self.replaced = parts[section - 1] if section else None
        self.article_id = article_id
        self.version_kind = "revision"
        self.version_number: int | None = None
        self.plan = self.plan.with_messages(self._messages(len(parts)))

    def _messages(self, count: int) -> list[dict]:
        data = revise_prompts()
        values = {**self.prompts.values(self.brief), "instruction": self.instruction,
                  "article": self.base.strip(), "number": self.section or 0, "count": count,
                  "section": self.replaced.text(self.base).strip() if self.replaced else ""}
        part = data["section" if self.replaced else "whole"]
        return [{"role": "system", "content": part["system"].format(**values).strip()},
                {"role": "user", "content": part["user"].format(**values).strip()}]

    @property
    def composed(self) -> str:
        """The article as this revision makes it: the whole new text, or the old text
        with the revised section put in its place."""
        new = self.text.strip("\n")
        if self.replaced is None:
            return new
        return self.base[:self.replaced.start] + new + self.base[self.replaced.end:]

    # -- its row is a version ------------------------------------------------------
    def _open_row(self, store: Store, status: Status) -> None:
        try:
            self.version_number = versions.open_version(
                store, self.article_id, kind="revision", status=status,
                instruction=self.label, section=self.section, provider=self.provider.name,
                model=self.provider.model, actor=self.actor)
        except versions.VersionError as exc:
            raise JobError(str(exc)) from None
        self._register(status)

    def _begin(self, store: Store) -> None:
        if self.queued:
            self.queued = False
            versions.update_version(store, self.article_id, self.version_number,
                                    status=Status.STREAMING.value)
        else:
            self._open_row(store, Status.STREAMING)

    def _save_draft(self, store: Store) -> None:
        try:
            versions.update_version(store, self.article_id, self.version_number,
                                    content=self.composed, words=count_words(self.composed))
        except StorageError:  # the next draft or the final save tries again
            pass

    def _save_final(self, store: Store, status: Status, finish_reason: str | None,
                    error: str | None, usage: Usage, error_kind: ErrorKind | None = None) -> None:
        served = self.generation.served_provider
        price = price_table(self.settings.prices_file, store.price_edits()).lookup(
            served.model, served.name)
        self.cost = price.cost(usage.input_tokens, usage.output_tokens) if price else None
        self.currency = price.currency if price else None
        content = self.composed if self.text.strip() else ""
        words = count_words(content)
        current = None
        if status == Status.COMPLETED and content.strip():  # the new version is current
            current = dict(content=content, words=words, language=self.brief.language,
                           checks=versions.checks_for(content, self.brief.brand,
                                                      self.brief.keywords))
        try:  # one transaction: the version, its charge, the article's new text
            versions.save_revision(
                store, self.article_id, self.version_number, status=status, text=content,
                words=words, charge=versions.Charge(usage.input_tokens, usage.output_tokens,
                                                    self.cost, self.currency, usage.source),
                version=dict(provider=served.name, model=served.model, error=error,
                             error_kind=error_kind.value if error_kind else None),
                current=current)
        finally:
            self.saved.set()


def _kit(store: Store, name: str) -> BrandKit | None:
    """The article's brand kit as it is now, if it still exists."""
    try:
        return brand_store.get(store, name)
    except BrandError:  # a kit that no longer loads: revise without it
        return None
