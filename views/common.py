"""View helpers shared by the pages: the page context and how an article is shown.
No provider, SQL or prompt logic here: that lives in `writer/`."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property

import streamlit as st

from writer import timezones
from writer.config import Settings, load_settings
from writer.export import export
from writer.i18n import Translator
from writer.kinds import Status
from writer.store import Store
from writer.pacing import progress_fraction
from writer.workers import Handle, Registry, State, shared


@dataclass
class PageContext:
    settings: Settings
    t: Translator

    @cached_property
    def tz(self):
        """The reader's time zone: the browser's, else WRITER_TIMEZONE, else UTC."""
        try:
            browser = st.context.timezone
        except Exception:  # no browser (AppTest, a bare script run)
            browser = None
        return timezones.choose(browser, self.settings.timezone)

    @cached_property
    def store(self) -> Store:
        # One connection per script run: Streamlit sessions are threads and a
        # sqlite connection must not be shared across them.
        return Store(self.settings.db_path)


def page_context() -> PageContext:
    settings = load_settings()
    language = st.session_state.get("ui_language", settings.ui_language)
    return PageContext(settings, Translator(language))


def registry() -> Registry:
    """The server's job registry (one per database): articles run there, not in a
    script run, so leaving the page, reloading or clicking anything never stops one
    (writer/workers.py)."""
    return shared(load_settings().db_path)


def stop_job(article_id: int) -> None:
    """Stop button callback (any page): the job stops and saves its text."""
    registry().cancel(article_id, wait_s=2.0)


_run = threading.local()  # this script run's sidebar progress slots
SIDEBAR_MAX_JOBS = 5  # more running articles: "+ N more" (History lists them all)


def running_panel(t: Translator) -> None:
    """Sidebar: every article being written by this server, with its progress, a link
    to watch it and Stop. It redraws itself every second while any runs (only itself,
    not the page); while the Write page streams here, its timer waits behind that run
    and the page refreshes these lines (`refresh_running`)."""
    reg = registry()

    @st.fragment(run_every=1.0 if reg.active() else None)
    def panel() -> None:
        active = reg.active()
        _run.slots = {}
        if not active:
            return
        st.caption(t("app.running_title", count=len(active)))
        shown = sorted(active, key=lambda h: h.article_id != st.session_state.get("article_id"))
        for handle in shown[:SIDEBAR_MAX_JOBS]:  # this tab's article first
            with st.container(border=True):
                st.page_link("views/write.py", label=f"#{handle.article_id} · {handle.topic}",
                             query_params={"article": str(handle.article_id)},
                             icon=":material/edit_note:")
                slot, stop_slot = st.empty(), st.empty()
                stop_slot.button(t("write.stop"), key=f"sidebar-stop-{handle.article_id}",
                                 icon=":material/stop_circle:", on_click=stop_job,
                                 args=(handle.article_id,), disabled=handle.stopping)
                _run.slots[handle.article_id] = [slot, handle, None, stop_slot]
                _paint_running(_run.slots[handle.article_id], t)
        if len(active) > SIDEBAR_MAX_JOBS:
            st.caption(t("app.running_more", count=len(active) - SIDEBAR_MAX_JOBS))

    panel()


def refresh_running(t: Translator) -> None:
    """Repaint the sidebar's progress lines that changed (called by a page that is
    streaming: the sidebar's own refresh waits until that run ends)."""
    for entry in getattr(_run, "slots", {}).values():
        _paint_running(entry, t)


def _paint_running(entry: list, t: Translator) -> None:
    slot, handle, painted, stop_slot = entry
    if handle.state == State.DONE:  # until the panel redraws itself: no Stop on it
        label = t(f"statuses.{handle.finished.status}") if handle.finished else "–"
        if label != painted:
            slot.caption(label)
            stop_slot.empty()
        entry[2] = label
        return
    label = running_label(handle, t)
    if label != painted:
        slot.progress(progress_fraction(handle.words, handle.target_words), text=label)
        entry[2] = label


def running_label(handle: Handle, t: Translator) -> str:
    """A running article's one-line state: stopping, its place in line, or its words."""
    if handle.stopping:
        return t("app.running_stopping")
    if handle.state == State.QUEUED:
        return t("app.running_queued", position=registry().position(handle) or 1)
    return t("write.progress", words=handle.words, target=handle.target_words,
             unit=unit(t, handle.job.brief.language))


def unit(t: Translator, language: str | None) -> str:
    """字 for a Chinese article, 词 / words for an English one (how its length counts)."""
    return t(f"units.{language}") if language in ("zh", "en") else t("units.mixed")


def format_cost(cost, currency, t: Translator) -> str:
    if cost is None:
        return t("write.unpriced")
    if currency == "local":
        return "0 (local)"
    return f"{cost:.4f} {currency}" if cost < 100 else f"{cost:,.2f} {currency}"


def show_stats(row: dict, t: Translator) -> None:
    """The article's figures as one compact table (metrics would clip in a column)."""
    ttft, duration, speed = row.get("ttft_ms"), row.get("duration_ms"), row.get("tokens_per_s")
    usage_source = row.get("usage_source")
    source = f" ({t('write.' + usage_source)})" if usage_source else ""
    cells = {
        t("write.stat_words"): f"{row['words']} / {row['target_words']}",
        t("write.stat_input_tokens") + source: _num(row.get("input_tokens")),
        t("write.stat_output_tokens") + source: _num(row.get("output_tokens")),
        t("write.stat_cost"): format_cost(row.get("cost"), row.get("currency"), t),
        t("write.stat_ttft"): f"{ttft / 1000:.2f} s" if ttft is not None else "–",
        t("write.stat_duration"): f"{duration / 1000:.1f} s" if duration else "–",
        t("write.stat_speed"): t("write.tokens_per_s", value=f"{speed:.0f}") if speed else "–",
    }
    header = " | ".join(cells)
    st.markdown(f"| {header} |\n|{'---|' * len(cells)}\n| {' | '.join(cells.values())} |")
    if row.get("itl_mean_ms") is not None:  # streamed: how evenly (NULL for a non-streamed answer)
        st.caption(t("write.stream_figures", mean=_ms(row["itl_mean_ms"]),
                     p95=_ms(row.get("itl_p95_ms")), gap=_ms(row.get("max_gap_ms")),
                     cv="–" if row.get("itl_cv") is None else f"{row['itl_cv']:.2f}"))
    if row.get("length_outcome"):  # length control was on: where it landed, in how many requests
        percent = round((row["words"] or 0) * 100 / row["target_words"])
        st.caption(t("write.length_result", outcome=t(f"outcomes.{row['length_outcome']}"),
                     percent=percent, requests=row.get("length_rounds") or 1))


def show_status(row: dict, t: Translator) -> None:
    status, article_id, error = row["status"], row["id"], explain_error(row, t)
    if status == Status.COMPLETED:
        st.success(t("write.status_completed", id=article_id))
    elif status == Status.TRUNCATED:
        st.warning(t("write.status_truncated", id=article_id, error=error))
    elif status == Status.STOPPED:
        st.info(t("write.status_stopped", id=article_id) + (f" — {error}" if error else ""))
    elif status == Status.FAILED:
        st.error(t("write.status_failed", id=article_id, error=error))


def explain_error(row: dict, t: Translator) -> str:
    """What went wrong, for the reader. The stored detail is English and already says
    what to do; a Chinese reader gets the Chinese hint first, the detail after it."""
    detail, kind = row.get("error") or "", row.get("error_kind")
    if detail == kind:  # e.g. "interrupted": no detail beyond the kind
        detail = ""
    hint = t(f"errors.{kind}") if kind and t.has(f"errors.{kind}") else ""
    if t.language == "en":
        return detail or hint
    return f"{hint}（{detail}）" if hint and detail else hint or detail


def show_article(row: dict, t: Translator, *, rendered: bool = True, key: str = "article") -> None:
    """The article as Markdown, its source with a copy button, and a download."""
    if rendered:
        st.markdown(row["content"])
    with st.expander(t("write.raw")):
        st.code(row["content"], language="markdown", wrap_lines=True)
    data, mime, name = export(row, "md")
    st.download_button(t("write.download_md"), data=data, file_name=name, mime=mime,
                       key=f"{key}-download-md", on_click="ignore")


def _ms(value) -> str:
    if value is None:
        return "–"
    return f"{value / 1000:.1f} s" if value >= 1000 else f"{value:.0f} ms"


def _num(value) -> str:
    return "–" if value is None else f"{value:,}"
