"""View helpers shared by the pages: the page context and how an article is shown.
No provider, SQL or prompt logic here: that lives in `writer/`."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import streamlit as st

from writer.config import Settings, load_settings
from writer.export import export
from writer.i18n import Translator
from writer.kinds import Status
from writer.store import Store


@dataclass
class PageContext:
    settings: Settings
    t: Translator

    @cached_property
    def store(self) -> Store:
        # One connection per script run: Streamlit sessions are threads and a
        # sqlite connection must not be shared across them.
        return Store(self.settings.db_path)


def page_context() -> PageContext:
    settings = load_settings()
    language = st.session_state.get("ui_language", settings.ui_language)
    return PageContext(settings, Translator(language))


def abandon_running_job() -> None:
    """This run replaced one that was still streaming (Stop, or any other click or
    page change): stop that job now — its provider connection is shut even if the
    stream is stalled — and remember its saved article. Called on every run."""
    job = st.session_state.pop("active_job", None)
    if job is None:
        return
    if job.article_id:
        st.session_state["last_article_id"] = job.article_id
    if not job.saved.is_set():
        job.cancel(wait_s=2.0)


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


def _num(value) -> str:
    return "–" if value is None else f"{value:,}"
