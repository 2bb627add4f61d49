"""View helpers shared by the pages: the page context, refusals (`guarded`), the
address's ids (`query_id`), the registry's running articles in the sidebar, and how an
article is shown. A person's or a model's words go into Markdown only through `plain`
(they stay text); an article body only through `images_as_links` (nothing is fetched).
No provider, SQL or prompt logic here: that lives in `writer/`."""
from __future__ import annotations

import functools
import html
import json
import threading
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, TypeVar

import streamlit as st

from writer import logs
from writer.access import AccessDenied, Actor, visible_author
from writer.config import Settings, load_settings
from writer.errors import UserError
from writer.io import timezones
from writer.io.export import MIME_TYPES, export, file_name, to_html_fragment, to_text
from writer.io.i18n import UI_LANGUAGES, Translator, unit
from writer.io.markup import images_as_links, plain
from writer.kinds import Status
from writer.runs.pacing import progress_fraction
from writer.runs.registry import Handle, Registry, State, shared
from writer.runs.remote import Elsewhere, elsewhere
from writer.storage import accounts
from writer.storage.migrations import LEGACY_AUTHOR
from writer.storage.store import Store, is_failed_request

Action = TypeVar("Action", bound=Callable)
MAX_ID = 2**63 - 1  # SQLite's largest INTEGER: an id in an address is at most this


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
        return Store(self.settings.database)


LANGUAGE_COOKIE = "writer_ui_language"  # the UI language, remembered by the browser


def page_context() -> PageContext:
    settings = load_settings()
    return PageContext(settings, Translator(ui_language(settings)))


def ui_language(settings: Settings) -> str:
    """The sidebar's choice in this session; after a reload (a new session) the
    address's ?lang=, else the browser's cookie, else WRITER_UI_LANGUAGE."""
    chosen = st.session_state.get("ui_language")
    if chosen in UI_LANGUAGES:
        return chosen
    try:
        remembered = (st.query_params.get("lang"), st.context.cookies.get(LANGUAGE_COOKIE))
    except Exception:  # no browser behind this run (a bare script run)
        remembered = ()
    for language in remembered:
        if language in UI_LANGUAGES:
            return language
    return settings.ui_language


def remember_language(language: str) -> None:
    """Keep the UI language across reloads: in the address (?lang=, also for a link
    sent to a colleague) and in a cookie (a bookmark or a new tab without ?lang=)."""
    if st.query_params.get("lang") != language:
        st.query_params["lang"] = language
    try:
        stored = st.context.cookies.get(LANGUAGE_COOKIE)
    except Exception:
        stored = None
    if language != stored and st.session_state.get("language_cookie_written") != language:
        st.html(f"<script>document.cookie = '{LANGUAGE_COOKIE}={language}; path=/; "
                f"max-age=31536000; samesite=lax';</script>", unsafe_allow_javascript=True)
        st.session_state["language_cookie_written"] = language


def query_id(name: str, t: Translator) -> int | None:
    """The address's `?name=` as an id (1 … MAX_ID), None when absent. Anything else
    (`²`, which `isdigit()` accepts and `int()` refuses, a number too large for SQLite,
    text) is dropped from the address with a short message, never a traceback."""
    value = st.query_params.get(name)
    if not value:
        return None
    if len(value) <= 19 and value.isascii() and value.isdigit() and 1 <= int(value) <= MAX_ID:
        return int(value)
    st.warning(t("app.bad_link", name=plain(name)), icon=":material/link_off:")
    st.query_params.pop(name, None)
    return None


def show_user_error(exc: UserError, t: Translator) -> None:
    """A refusal in the UI language (its `user_errors.*` key), the English one-line
    detail collapsed under it. The values (a kit's name, a file's) stay text."""
    key = exc.key if t.has(exc.key) else "user_errors.generic"
    try:
        text = t(key, **{k: plain(v) if isinstance(v, str) else v for k, v in exc.values.items()})
    except (KeyError, IndexError):  # a placeholder the error does not fill
        text = t("user_errors.generic")
    st.error(text, icon=":material/error:")
    if str(exc):
        show_details(str(exc), t)


def _translator() -> Translator:
    try:
        return page_context().t
    except UserError:  # the settings themselves are refused: the session's language
        language = st.session_state.get("ui_language")
        return Translator(language if language in UI_LANGUAGES else "en")


def guarded(action: Action) -> Action:
    """The one place pages catch refusals: wraps every callback (`on_click=guarded(f)`,
    or `@guarded`), page action, fragment and the page itself (app.py). A `UserError`
    it raises is shown where it happened (a callback's message: at the top of the
    page) in the UI language, with the English detail collapsed; no traceback."""
    @functools.wraps(action)
    def run(*args, **kwargs):
        try:
            return action(*args, **kwargs)
        except UserError as exc:
            show_user_error(exc, _translator())
            return None
    return run


def current_actor(ctx: PageContext | None = None) -> Actor:
    """The person this page acts for (app.py's gate, views/auth.py, put them in the
    session). Signed in with an account, the session is read again: a callback runs
    before the gate does, and the session may have ended or the role changed since the
    page was drawn. Nobody: refused (AccessDenied)."""
    actor = st.session_state.get("actor")
    if not isinstance(actor, Actor):
        raise AccessDenied("nobody is signed in", action="use the app")
    token = st.session_state.get("session_token")
    if token:
        fresh = accounts.session_actor((ctx or page_context()).store, token)
        if fresh is None:
            st.session_state.pop("actor", None)
            raise AccessDenied("the session has ended: sign in again", action="use the app")
        actor = st.session_state["actor"] = fresh
    return actor


def reader_scope(actor: Actor, settings: Settings) -> str | None:
    """The author whose rows `actor` reads (None: everyone's): WRITER_HISTORY_SCOPE."""
    return visible_author(actor, settings.history_scope)


def handle_author(handle: Handle) -> str | None:
    """Whose article a running job writes."""
    return handle.author


def author_label(name: str | None, t: Translator) -> str:
    """An author as shown: rows made before sign-in existed say so in the UI language."""
    return t("auth.legacy_author") if name == LEGACY_AUTHOR else name or "–"


def may_see(handle: Handle, actor: Actor, scope: str | None) -> bool:
    return scope is None or actor.owns(handle_author(handle))


def registry() -> Registry:
    """The server's job registry (one per database): articles run there, not in a
    script run, so leaving the page, reloading or clicking anything never stops one
    (writer/runs/registry.py)."""
    return shared(load_settings().database)


@guarded
def stop_job(article_id: int) -> None:
    """Stop button callback (any page): the job stops and saves its text."""
    registry().cancel(article_id, wait_s=2.0, actor=current_actor())


_run = threading.local()  # this script run's sidebar progress slots
SIDEBAR_MAX_JOBS = 5  # more running articles: "+ N more" (History lists them all)


def running_panel(t: Translator, actor: Actor, scope: str | None) -> None:
    """Sidebar: the articles being written by this server (and, as `Elsewhere` rows read
    from the database, by other processes on it) that `actor` may see (their
    own, or everyone's: `scope`, reader_scope), with progress, a link to watch each and
    Stop (on what they may stop; someone else's shows its author). It redraws itself
    every second while any runs (only itself, not the page); while the Write page
    streams here, its timer waits behind that run and the page refreshes these lines
    (`refresh_running`) and turns the Stop of what it streams into a plain button
    (`plain_stop`)."""
    reg = registry()

    def visible() -> list[Handle]:  # other processes' rows cost a query: read once a run
        return [h for h in [*reg.active(), *elsewhere(reg)] if may_see(h, actor, scope)]

    now = [visible()]  # this run's list, for the first draw; the refreshes read anew

    @st.fragment(run_every=1.0 if now[0] else None)
    @guarded
    def panel() -> None:
        active = now.pop() if now else visible()
        _run.slots = {}
        if not active:
            return
        st.caption(t("app.running_title", count=len(active)))
        shown = sorted(active, key=lambda h: h.article_id != st.session_state.get("article_id"))
        for handle in shown[:SIDEBAR_MAX_JOBS]:  # this tab's article first
            with st.container(border=True):
                st.page_link("views/write.py", label=f"#{handle.article_id} · {plain(handle.topic)}",
                             query_params={"article": str(handle.article_id)},
                             icon=":material/edit_note:")
                author = handle_author(handle)
                if not actor.owns(author):
                    st.caption(t("auth.by_author", name=plain(author_label(author, t))))
                slot, stop_slot = st.empty(), st.empty()
                if actor.may_change(author):
                    stop_slot.button(t("write.stop"), key=f"sidebar-stop-{handle.article_id}",
                                     icon=":material/stop_circle:", on_click=stop_job,
                                     args=(handle.article_id,), disabled=handle.stopping)
                _run.slots[handle.article_id] = [slot, handle, None, stop_slot]
                _paint_running(_run.slots[handle.article_id], t)
        if len(active) > SIDEBAR_MAX_JOBS:
            st.caption(t("app.running_more", count=len(active) - SIDEBAR_MAX_JOBS))

    panel()


def plain_stop(article_id: int, t: Translator) -> None:
    """The sidebar's Stop of an article this script run streams (the Write page), as a
    plain button rather than the panel's fragment one. A fragment's click waits until
    the running script ends (Streamlit reruns a fragment only then), so it would wait
    for the whole article; a plain click starts a new run at once (runner.fastReruns),
    whose callback stops the job, like the page's own Stop."""
    entry = getattr(_run, "slots", {}).get(article_id)
    if entry is None or entry[1].state == State.DONE:
        return
    actor = st.session_state.get("actor")
    if not isinstance(actor, Actor) or not actor.may_change(handle_author(entry[1])):
        return
    entry[3].button(t("write.stop"), key=f"sidebar-stop-page-{article_id}",
                    icon=":material/stop_circle:", on_click=stop_job, args=(article_id,),
                    disabled=entry[1].stopping)


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
    remote = isinstance(handle, Elsewhere)  # written by another process: no place in line
    if handle.state == State.QUEUED:
        return t("statuses.queued") if remote else \
            t("app.running_queued", position=registry().position(handle) or 1)
    return t("write.progress", words=handle.words, target=handle.target_words,
             unit=unit(t, handle.language if remote else handle.job.brief.language))


def format_cost(cost, currency, t: Translator) -> str:
    if cost is None:
        return t("write.unpriced")
    if currency == "local":
        return "0 (local)"
    return f"{cost:.4f} {currency}" if cost < 100 else f"{cost:,.2f} {currency}"


def show_stats(row: dict, t: Translator) -> None:
    """The article's figures as metrics in a row that wraps (at 1280×800 the result
    column is ~500 px wide: a table would crush to one character per line)."""
    ttft, duration, speed = row.get("ttft_ms"), row.get("duration_ms"), row.get("tokens_per_s")
    usage_source = row.get("usage_source")
    source = f" ({t('write.' + usage_source)})" if usage_source else ""
    cells = {
        t("write.stat_words"): f"{row['words'] or 0} / {row['target_words']} "
                               f"{unit(t, row.get('language'))}",
        t("write.stat_cost"): format_cost(row.get("cost"), row.get("currency"), t),
        t("write.stat_input_tokens") + source: _num(row.get("input_tokens")),
        t("write.stat_output_tokens") + source: _num(row.get("output_tokens")),
        t("write.stat_ttft"): f"{ttft / 1000:.2f} s" if ttft is not None else "–",
        t("write.stat_duration"): f"{duration / 1000:.1f} s" if duration else "–",
        t("write.stat_speed"): t("write.tokens_per_s", value=f"{speed:.0f}") if speed else "–",
    }
    # Compact figures: Streamlit's metric value is 2.25rem, three rows of boxes here.
    st.html("<style>[class*='st-key-writer-stats'] [data-testid='stMetricValue']"
            "{font-size:1.15rem;line-height:1.4}[class*='st-key-writer-stats'] "
            "[data-testid='stMetric']{padding:.35rem .75rem}</style>")
    figures = st.container(horizontal=True, gap="small", key=f"writer-stats-{row.get('id')}")
    for label, value in cells.items():
        figures.metric(label, value, width="content", border=True)
    if row.get("itl_mean_ms") is not None:  # streamed: how evenly (NULL for a non-streamed answer)
        st.caption(t("write.stream_figures", mean=_ms(row["itl_mean_ms"]),
                     p95=_ms(row.get("itl_p95_ms")), gap=_ms(row.get("max_gap_ms")),
                     cv="–" if row.get("itl_cv") is None else f"{row['itl_cv']:.2f}"))
    if row.get("length_outcome"):  # length control was on: where it landed, in how many requests
        percent = round((row["words"] or 0) * 100 / row["target_words"])
        st.caption(t("write.length_result", outcome=t(f"outcomes.{row['length_outcome']}"),
                     percent=percent, requests=row.get("length_rounds") or 1))


def show_status(row: dict, t: Translator) -> None:
    """One message in the UI language: what happened, what to do; the provider's own
    words (English) only in a collapsed "details" line under it."""
    status, article_id = row["status"], row["id"]
    hint, detail = explain_error(row, t)
    if is_failed_request(row):  # nothing was written: no article, only the error
        st.error(t("write.request_failed", hint=hint or t("errors.other")))
    elif status == Status.COMPLETED:
        st.success(t("write.status_completed", id=article_id))
    elif status == Status.TRUNCATED:
        st.warning(t("write.status_truncated", id=article_id, error=hint))
    elif status == Status.STOPPED:
        st.info(t("write.status_stopped", id=article_id) + (f" {hint}" if hint else ""))
    elif status == Status.FAILED:
        st.error(t("write.status_failed", id=article_id, error=hint))
    if detail and status in (Status.TRUNCATED, Status.STOPPED, Status.FAILED):
        show_details(detail, t)


def notice_text(event, t: Translator) -> str:
    """A notice (engine.Notice) in the UI language, built from its fields; its
    `message` is English (the CLI's) and is used only where it is content (a heading)."""
    reason = ""
    if event.error_kind:
        key = f"retry_reasons.{event.error_kind}"
        reason = t(key) if t.has(key) else t("retry_reasons.other")
        if event.status:
            reason += t("retry_reasons.http", status=event.status)
    return t(f"notices.{event.kind}", message=plain(event.message), wait=f"{event.wait_s:.0f}",
             attempt=event.attempt, max=event.max_attempts, reason=reason,
             provider=plain(event.provider), failed=plain(event.failed_provider))


def show_details(detail: str, t: Translator) -> None:
    with st.expander(t("write.details")):
        st.text(detail)


def explain_error(row: dict, t: Translator) -> tuple[str, str]:
    """(hint, detail): what went wrong and what to do, in the UI language (from the
    failure kind), and the stored detail — the provider's English, which names the
    address, the HTTP status and its own message — when it says more than the kind."""
    detail, kind = logs.redact(row.get("error") or ""), row.get("error_kind")  # older rows too
    if detail == kind:  # e.g. "interrupted": no detail beyond the kind
        detail = ""
    hint = t(f"errors.{kind}") if kind and t.has(f"errors.{kind}") else ""
    if not hint:  # an unknown kind: the detail (a provider's words: text) is all there is
        return (plain(detail) if t.language == "en" else t("errors.other")) if detail else "", \
            "" if t.language == "en" else detail
    return hint, detail


def show_article(row: dict, t: Translator, *, rendered: bool = True, key: str = "article") -> None:
    """The article, a Copy button (rich text and plain text, for WeChat, Word or a
    CMS), downloads (Word, HTML, Markdown, text) and the Markdown source."""
    if rendered:
        st.markdown(images_as_links(row["content"]))
    actions = st.container(horizontal=True, gap="small", vertical_alignment="center")
    with actions:
        copy_button(row, t, key=key)
    for fmt, icon in (("docx", ":material/description:"), ("html", ":material/code:"),
                      ("md", ":material/markdown:"), ("txt", ":material/notes:")):
        # Built when clicked (on another thread), not on every render of the page.
        actions.download_button(t(f"history.download_{fmt}"), icon=icon,
                                data=lambda fmt=fmt: export(row, fmt)[0],
                                file_name=file_name(row, fmt), mime=MIME_TYPES[fmt],
                                key=f"{key}-download-{fmt}-{row['id']}", on_click="ignore")
    with st.expander(t("write.raw")):
        st.code(row["content"], language="markdown", wrap_lines=True)


COPY_SCRIPT = """
<div class="writer-copy" style="display:flex;align-items:center;gap:.5rem">
<button type="button" id="%(id)s" class="writer-copy-button"><svg viewBox="0 0 24 24"
fill="none" stroke="currentColor" stroke-width="2" aria-hidden="true"><rect x="9" y="9"
width="11" height="11" rx="2"/><path d="M5 15V5a2 2 0 0 1 2-2h8"/></svg>%(label)s</button>
<span id="%(id)s-done" role="status" style="font-size:.875rem;color:#21c354"></span>
</div>
<style>
.writer-copy-button{font:inherit;font-size:.875rem;line-height:1.6;padding:.25rem .75rem;
min-height:2.5rem;border-radius:.5rem;cursor:pointer;color:inherit;background:transparent;
border:1px solid rgba(49,51,63,.2);font-weight:600}
.writer-copy-button svg{width:1.1rem;height:1.1rem;margin-right:.4rem;vertical-align:-.2rem}
.writer-copy-button:hover{border-color:currentColor;opacity:.85}
.writer-copy-button:focus-visible{outline:2px solid #1c83e1;outline-offset:2px}
</style>
<script>
(function () {
  const button = document.getElementById(%(id_js)s);
  if (!button) return;
  const html = %(html)s, text = %(text)s, done = %(done)s, failed = %(failed)s;
  const status = document.getElementById(%(id_js)s + "-done");
  function byEvent() {  // works without the async clipboard API (plain-http addresses)
    let ok = false;
    const put = (event) => {
      event.clipboardData.setData("text/html", html);
      event.clipboardData.setData("text/plain", text);
      event.preventDefault();
      ok = true;
    };
    document.addEventListener("copy", put, true);
    try { document.execCommand("copy"); } finally {
      document.removeEventListener("copy", put, true);
    }
    return ok;
  }
  button.onclick = async function () {
    let ok = false;
    try {
      if (navigator.clipboard && window.ClipboardItem && window.isSecureContext) {
        await navigator.clipboard.write([new ClipboardItem({
          "text/html": new Blob([html], {type: "text/html"}),
          "text/plain": new Blob([text], {type: "text/plain"})})]);
        ok = true;
      }
    } catch (error) { ok = false; }
    if (!ok) ok = byEvent();
    status.textContent = ok ? done : failed;
    setTimeout(function () { status.textContent = ""; }, 4000);
  };
})();
</script>
"""


def copy_button(row: dict, t: Translator, *, key: str) -> None:
    """A visible Copy button: puts the article on the clipboard as rich text (HTML:
    headings, lists and bold survive a paste into WeChat's editor, Word or a CMS) and
    as plain text (for a plain field), not Markdown with # marks."""
    element_id = f"writer-copy-{key}-{row['id']}"
    st.html(COPY_SCRIPT % {
        "id": element_id, "id_js": _js(element_id), "label": html.escape(t("write.copy")),
        "html": _js(to_html_fragment(row)), "text": _js(to_text(row)),
        "done": _js(t("write.copied")), "failed": _js(t("write.copy_failed")),
    }, unsafe_allow_javascript=True)


def _js(value: str) -> str:
    """A JSON string literal that is safe inside a <script> element. No "<" at all:
    Streamlit's DOMPurify drops a script whose text looks like markup ("<h1>")."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")


def _ms(value) -> str:
    if value is None:
        return "–"
    return f"{value / 1000:.1f} s" if value >= 1000 else f"{value:.0f} ms"


def _num(value) -> str:
    return "–" if value is None else f"{value:,}"
