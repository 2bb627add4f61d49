"""Write page: the brief form, the live stream with a word-count progress bar, the result."""
import time

import streamlit as st

from views.brand_view import pick_brand, show_checks
from views.common import (
    current_actor,
    guarded,
    handle_author,
    notice_text,
    page_context,
    plain_stop,
    query_id,
    reader_scope,
    refresh_running,
    registry,
    running_label,
    show_article,
    show_details,
    show_stats,
    show_status,
    stop_job,
    unit,
)
from views.following import follow_elsewhere
from views.versions_view import headlines_panel, revise_panel, versions_panel
from writer.brief import (
    CONTENT_TYPES,
    LANGUAGES,
    MAX_FIELD_CHARS,
    MAX_KEYWORDS_TEXT_CHARS,
    MAX_TOPIC_CHARS,
    MAX_WORDS,
    MIN_WORDS,
    STYLE_PRESETS,
    Brief,
    BriefError,
)
from writer.generation.events import Notice, Outlined
from writer.io.markup import ImageGuard, images_as_links, plain
from writer.kinds import ACTIVE, LengthOutcome, NoticeKind
from writer.providers.choice import available_providers
from writer.runs import variants
from writer.runs.feed import viewer_scale
from writer.runs.job import Job, can_continue
from writer.runs.pacing import Pacer, overshoot_percent, progress_fraction
from writer.runs.registry import Handle, State
from writer.storage import brands, usage
from writer.storage.store import Store, is_failed_request

ctx = page_context()
t = ctx.t
actor = current_actor(ctx)
st.title(t("write.title"))

def providers_by_name(settings) -> dict:
    return {p.name: p for p in available_providers(settings)}


def start(job_for) -> None:
    """Build the job and hand it to the registry; this tab then shows it. A refusal
    (e.g. no WRITER_MODEL for a server listing several) is one message on the page: the
    callbacks that call this are `guarded`. Called from button callbacks, which run
    before the script: the request leaves at once, and the sidebar drawn next already
    lists the article."""
    job = job_for()
    handle = registry().submit(job)
    if job.brief.language != job.requested_language:
        st.session_state["write_message"] = ("info", t("write.local_english_now"))
    st.session_state["article_id"] = handle.article_id


FORM_FIELDS = ("topic", "content_type", "style", "custom_style", "target_words", "language",
               "audience", "keywords")


def brief_error_text(exc: BriefError) -> str:
    """A refusal of the brief in the UI language (the BriefError itself is English)."""
    if exc.code and t.has(f"brief_errors.{exc.code}"):
        return t(f"brief_errors.{exc.code}", min=MIN_WORDS, max=MAX_WORDS,
                 topic_max=MAX_TOPIC_CHARS, field_max=MAX_FIELD_CHARS, **exc.values)
    return t("write.invalid", error=exc)


@guarded
def generate() -> None:
    """The Generate button: check the brief, then start it. A refusal is shown next
    to its field, in the UI language, until that field changes."""
    ss, now = st.session_state, page_context()  # a callback runs in the next run's thread
    ss.pop("form_errors", None)
    provider = providers_by_name(now.settings).get(ss.get("provider"))
    style = ss.get("style")
    if style == "custom":  # an empty custom style: the Brief's default
        style = (ss.get("custom_style") or "").strip()
    kit = brands.get(now.store, ss["brand"]) if ss.get("brand") else None
    try:
        brief = Brief(topic=ss.get("topic") or "", content_type=ss.get("content_type"),
                      style=style, target_words=int(ss.get("target_words") or 0), brand=kit,
                      language=ss.get("language"), audience=ss.get("audience") or "",
                      keywords=ss.get("keywords") or "")
    except BriefError as exc:
        field = exc.field if exc.field in FORM_FIELDS else "generate"
        ss["form_errors"] = {field: (brief_error_text(exc), ss.get(field))}
        return
    who = current_actor(now)
    if provider:  # a hard cap reached: refused here (BudgetExceeded, shown by `guarded`)
        usage.require_within_budget(now.store, now.settings, provider, tz=now.tz, actor=who)
    budget = usage.budget_status_for(now.store, now.settings, provider, tz=now.tz) \
        if provider else None
    if budget is not None and budget["level"] == "over":
        if not ss.get("budget_confirm"):
            ss["form_errors"] = {"budget_confirm": (t("write.budget_confirm_needed"),
                                                    ss.get("budget_confirm"))}
            return
        ss["budget_confirm"] = False  # asked again for the next article
    count = int(ss.get("variants") or 1)
    if count > 1:
        start_variants(brief, now, provider, count, who)
        return
    ss.pop("variant_ids", None)
    start(lambda: Job(brief, now.settings, provider=provider,
                      length_control=ss.get("length_control", True), actor=who))


def start_variants(brief: Brief, now, provider, count: int, who) -> None:
    """N versions of the brief, written side by side; gathered into one article (the
    first) when the last ends, on the server (writer/runs/variants.py)."""
    ss = st.session_state
    jobs = variants.jobs_for(brief, now.settings, count, provider=provider,
                             length_control=ss.get("length_control", True), actor=who)
    handles = [registry().submit(job) for job in jobs]
    ids = [h.article_id for h in handles]
    variants.tag(now.store, ids)
    db_path = now.settings.database

    def gather(_handle) -> None:  # on a worker thread, when each variant ends
        store = Store(db_path)
        try:
            variants.gather(store, ids[0])
        finally:
            store.close()

    for handle in handles:
        handle.when_done(gather)
    ss["variant_ids"] = ids
    ss["article_id"] = ids[0]


@guarded
def continue_article(article_id: int) -> None:
    """Continue (here or from History): append to the article in the same row."""
    now = page_context()
    provider = providers_by_name(now.settings).get(st.session_state.get("provider"))
    start(lambda: Job.continuing(article_id, now.settings, provider=provider,
                                 actor=current_actor(now)))


def field_error(field: str) -> None:
    """The refusal for `field`, right under it, while its value is still the refused one."""
    error = st.session_state.get("form_errors", {}).get(field)
    if error and st.session_state.get(field) == error[1]:
        st.error(error[0], icon=":material/error:")


def content_type_changed() -> None:
    """Marketing copy and social posts default to 3 variants, other types to 1."""
    st.session_state["variants"] = variants.default_count(st.session_state.get("content_type"))


form_col, out_col = st.columns([2, 3], gap="large")  # the stream stays in view beside the form


def render_form() -> None:
    """The brief. While an article streams into this tab it is drawn right after the
    first words (view_job), so they reach the screen before a dozen widgets do."""
    with form_col:
        ss = st.session_state
        providers = providers_by_name(ctx.settings)
        if ss.get("provider") not in providers:  # first visit, or a provider went away
            ss.pop("provider", None)
        provider_name = st.selectbox(
            t("write.provider"), list(providers), placeholder=t("app.choose"), key="provider",
            persist_state="session",
            format_func=lambda n: t("write.provider_local") if n == "local"
            else providers[n].label())
        provider = providers[provider_name]
        local = provider.kind == "local"
        budget = usage.budget_status_for(ctx.store, ctx.settings, provider, tz=ctx.tz)
        over_budget = budget is not None and budget["level"] == "over"
        if budget and budget["level"] != "ok":
            capped = over_budget and budget.get("hard_cap")  # refused, not asked
            (st.error if over_budget else st.warning)(t(
                "user_errors.budget_exceeded" if capped else
                "write.budget_over" if over_budget else "write.budget_warn",
                spent=f"{budget['spent']:.2f}", budget=f"{budget['budget']:.2f}",
                currency=budget["currency"], percent=round(budget["ratio"] * 100)))

        # Plain widgets, not an st.form: what is typed is kept across pages and reruns
        # (persist_state="session"), and a click no longer stops an article anyway. The
        # Generate callback reads the values from session state.
        keep = {"persist_state": "session"}
        st.text_input(t("write.topic"), placeholder=t("write.topic_placeholder"),
                      max_chars=MAX_TOPIC_CHARS, key="topic", **keep)
        field_error("topic")
        left, right = st.columns(2)
        left.selectbox(t("write.content_type"), CONTENT_TYPES, placeholder=t("app.choose"),
                       key="content_type", on_change=content_type_changed,
                       format_func=lambda k: t(f"content_types.{k}"), **keep)

        style = right.selectbox(t("write.style"), (*STYLE_PRESETS, "custom"),
                                placeholder=t("app.choose"), key="style",
                                format_func=lambda k: t(f"styles.{k}") if k != "custom"
                                else t("write.style_custom"), **keep)
        if style == "custom":
            st.text_input(t("write.style_custom_text"), key="custom_style", max_chars=MAX_FIELD_CHARS,
                          placeholder=t("write.style_custom_placeholder"), **keep)
            field_error("custom_style")
        # The default comes from session state, which "Write again" (History) also fills.
        ss.setdefault("target_words", 800)
        ss.setdefault("language", "zh")
        left, right = st.columns(2)
        language = ss.get("language")
        # No min/max on the widget: the browser would refuse out-of-range values with
        # an English tooltip and Generate would silently do nothing. Checked here.
        length = left.number_input(t("write.length", unit=unit(t, language)), step=50,
                                   help=t("write.length_help"), key="target_words", **keep)
        with left:
            if not MIN_WORDS <= (length or 0) <= MAX_WORDS:
                st.error(t("brief_errors.length_range", min=MIN_WORDS, max=MAX_WORDS),
                         icon=":material/error:")
            else:
                field_error("target_words")
        right.radio(t("write.language"), LANGUAGES, horizontal=True, key="language",
                    format_func=lambda k: t(f"languages.{k}"), **keep)
        left, right = st.columns(2)
        left.text_input(t("write.audience"), key="audience", max_chars=MAX_FIELD_CHARS,
                        placeholder=t("write.audience_placeholder"), **keep)
        with left:
            field_error("audience")
        right.text_input(t("write.keywords"), key="keywords", max_chars=MAX_KEYWORDS_TEXT_CHARS,
                         placeholder=t("write.keywords_placeholder"), **keep)
        with right:
            field_error("keywords")
        left, right = st.columns(2)
        with left:
            pick_brand(ctx.store, t, key="brand")
        ss.setdefault("variants", variants.default_count(ss.get("content_type") or "blog"))
        right.segmented_control(t("write.variants"), (1, 2, 3), key="variants",
                                help=t("write.variants_help"), **keep)
        if over_budget and not budget.get("hard_cap"):  # a hard cap: refused, not asked
            st.checkbox(t("write.budget_confirm"), key="budget_confirm")
            field_error("budget_confirm")
        # Generate above the fold at 1280×800, with the length switch beside it.
        left, right = st.columns(2, vertical_alignment="center")
        left.button(t("write.generate"), type="primary", key="generate", on_click=generate,
                    icon=":material/edit:")
        right.checkbox(t("write.length_control_short"), value=True, key="length_control",
                       help=t("write.length_control_help"), **keep)
        field_error("generate")
        if local:  # under Generate, short (the whole note in its tooltip): above the fold
            st.caption(f":material/info: {t('write.local_notice_short')}",
                       help=t("write.local_notice"))


def progress_text(words: int, target: int, language: str | None,
                  section: tuple[int, int] | None = None, landed: str | None = None) -> str:
    """"412 / 800 字" (a Chinese article) or "412 / 800 词" (an English one)."""
    counted = unit(t, language)
    if landed == LengthOutcome.ON_TARGET:  # held to the target: no "over target" alarm
        return t("write.progress_on_target", words=words, target=target, unit=counted)
    over = overshoot_percent(words, target)
    if over:
        text = t("write.progress_over", words=words, target=target, percent=over, unit=counted)
    else:
        text = t("write.progress", words=words, target=target, unit=counted)
    if section:  # long-form: "section 3 / 6"
        text += " · " + t("write.progress_section", number=section[0], count=section[1])
    return text


SIDEBAR_REFRESH_S = 1.0  # the sidebar's progress lines, while this page streams (× viewers/4)
NOTICE_STYLES = {NoticeKind.FAILOVER: "warning", NoticeKind.RETRYING: "warning",
                 NoticeKind.THROTTLED: "warning"}  # else info


def show_notice(slot, event: Notice) -> None:
    getattr(slot, NOTICE_STYLES.get(event.kind, "info"))(notice_text(event, t))


def view_job(handle: Handle, then=None) -> None:
    """Attach to a job and show it until it ends: the text so far at once, then the
    rest through st.write_stream, with the progress bar, notices and Stop. A rerun
    (any click, another page, a reload) only detaches this view: the job goes on in
    the server's registry and the next run attaches again. `then` (the form) is drawn
    once the first words are painted, or after 50 ms without any."""
    article_id, target = handle.article_id, handle.target_words
    stop_slot = st.empty()
    if actor.may_change(handle_author(handle)):  # a colleague's (scope team): watched only
        stop_slot.button(t("write.stop"), key="stop", icon=":material/stop_circle:",
                         on_click=stop_job, args=(article_id,))
    plain_stop(article_id, t)  # the sidebar's Stop must not wait for this run to end
    progress = st.progress(progress_fraction(handle.words, target),
                           text=t("write.waiting_first"))
    hint = st.empty()
    hint.caption(t("write.background_hint"))
    notice = st.empty()
    plan = st.empty()  # long-form: the outline, once it is known
    section: list[tuple[int, int]] = []  # long-form: the section being written
    state = {"notice": None, "landed": None, "progress": None, "sidebar_at": 0.0}

    def paint_progress() -> None:
        """The bar and the sidebar, only when they change (each paint is a message)."""
        if handle.state == State.QUEUED:
            text = t("write.queued", provider=handle.provider_name,
                     position=registry().position(handle) or 1)
        elif handle.words == 0 and not handle.feed.closed:
            text = t("write.waiting_first")
        else:
            text = progress_text(handle.words, target, handle.job.brief.language, *section[-1:],
                                 landed=state["landed"])
        if text != state["progress"]:
            state["progress"] = text
            progress.progress(progress_fraction(handle.words, target), text=text)
        now = time.monotonic()
        if now - state["sidebar_at"] >= SIDEBAR_REFRESH_S * viewer_scale():
            state["sidebar_at"] = now
            refresh_running(t)

    def chunks():
        pending = [then] if then else []
        images = ImageGuard()  # a model's image is shown as a link: nothing is fetched
        for update in handle.follow(pacer=Pacer(), tick_s=0.5, first_tick_s=0.05):
            for event in update.events:
                if isinstance(event, Outlined):
                    with plan.expander(t("write.outline"), expanded=False):
                        st.markdown(images_as_links(event.outline.as_markdown()))
                elif isinstance(event, Notice) and event.kind == NoticeKind.SECTION:
                    section.append((event.attempt, event.max_attempts))
            if update.finished is not None:
                state["landed"] = update.finished.length_outcome
            if update.notice is not state["notice"]:
                state["notice"] = update.notice
                if update.notice is None:
                    notice.empty()
                else:
                    show_notice(notice, update.notice)
            text = images.feed(update.text) if update.text else ""
            if text:
                yield text
            while pending:
                pending.pop()()
            paint_progress()
        notice.empty()
        if held := images.close():
            yield held

    st.write_stream(chunks())
    stop_slot.empty()  # nothing left to stop
    hint.empty()
    if handle.words == 0:  # nothing was written (e.g. a 401): no empty bar, only the error
        progress.empty()
    refresh_running(t)


def show_result(row: dict, *, fresh: bool) -> None:
    if is_failed_request(row):  # the provider refused: no article, only what to do
        show_status(row, t)
        return
    if not fresh:  # the same final bar as at the end of the stream (a rerun must not drop it)
        st.progress(progress_fraction(row["words"] or 0, row["target_words"]),
                    text=progress_text(row["words"] or 0, row["target_words"], row["language"],
                                       landed=row.get("length_outcome")))
    show_status(row, t)
    show_stats(row, t)
    mine = actor.may_change(row.get("author"))  # Continue, versions, revise: its author's
    if can_continue(row) and mine:
        st.button(t("write.continue"), key=f"continue-{row['id']}", icon=":material/play_arrow:",
                  on_click=continue_article, args=(row["id"],))
    show_checks(row, t)  # the brand kit's banned words and required terms, the keywords
    show_article(row, t, rendered=not fresh, key="fresh" if fresh else "last")
    if (row["content"] or "").strip():  # from a first draft to copy the team can publish
        versions_panel(row, t, ctx.store, ctx.tz, mine=mine)
        if mine:
            revise_panel(row, t)
        if mine and row["content_type"] == "blog":
            headlines_panel(row, t)


@guarded
def stop_variants(ids: list[int]) -> None:
    who = current_actor()
    for article_id in ids:
        registry().cancel(article_id, wait_s=0, actor=who)


def view_variants(ids: list[int]) -> None:
    """The variants streaming side by side, each with its bar, until all have ended;
    then the page shows the article they were gathered into."""
    handles = [registry().get(i) for i in ids]
    st.button(t("write.stop"), key="stop-variants", icon=":material/stop_circle:",
              on_click=stop_variants, args=(ids,))
    for article_id in ids:  # the sidebar's Stops must not wait for this run to end
        plain_stop(article_id, t)
    slots = []
    for number, (column, handle) in enumerate(zip(st.columns(len(ids)), handles), 1):
        with column:
            st.markdown(f"**{t('write.variant', number=number)}**")
            slots.append((handle, st.empty(), st.empty(), [None, None]))
    render_form()
    while True:
        for handle, bar, text, painted in slots:
            if handle is None:
                continue
            label = running_label(handle, t) if handle.state != State.DONE else \
                t(f"statuses.{handle.finished.status}") if handle.finished else "–"
            if label != painted[0]:
                bar.progress(progress_fraction(handle.words, handle.target_words), text=label)
                painted[0] = label
            body = handle.feed.text
            if body != painted[1]:
                text.markdown(images_as_links(body))
                painted[1] = body
        if all(h is None or h.done.is_set() for h in handles):
            break
        time.sleep(0.3)
    time.sleep(0.1)  # the last one's gather runs right after its row is saved
    st.rerun()


with out_col:
    st.session_state.pop("revision_started", None)  # History sent us here to watch it
    variant_ids = st.session_state.get("variant_ids")
    if variant_ids:
        group = ctx.store.get(variant_ids[0])
        if group is not None and group.get("variant_group") is not None:  # still writing
            view_variants(variant_ids)
        st.session_state.pop("variant_ids", None)
    continue_id = st.session_state.pop("continue_id", None)  # History's Continue
    if continue_id:
        continue_article(continue_id)
    message = st.session_state.pop("write_message", None)
    if message:
        getattr(st, message[0])(message[1])
        if len(message) > 2:  # the English detail, collapsed
            show_details(message[2], t)
    # Which article this tab shows: the one just started, one opened by a link
    # (?article=N: the sidebar, a reload, a second tab), or the last one it showed.
    linked = query_id("article", t)  # None, with a message, for ?article=² or a huge number
    shown = st.session_state.get("shown_article_id")
    if linked is not None and linked != shown and \
            st.session_state.get("article_id") == shown:  # a link, not a new article
        st.session_state["article_id"] = linked
    article_id = st.session_state["shown_article_id"] = st.session_state.get("article_id")
    scope = reader_scope(actor, ctx.settings)
    if article_id is not None and scope is not None and \
            not actor.owns(ctx.store.author_of(article_id)):  # someone else's: not for a writer
        st.session_state.pop("article_id", None)
        st.query_params.pop("article", None)
        article_id = st.session_state["shown_article_id"] = None
    if article_id is not None and st.query_params.get("article") != str(article_id):
        st.query_params["article"] = str(article_id)  # a reload comes back to it
    handle = registry().get(article_id)
    streamed = handle is not None and handle.state != State.DONE
    if streamed:
        view_job(handle, then=render_form)
        handle.done.wait(5)  # the feed ends once the row is saved; this is a formality
    else:
        render_form()
    if handle is not None and handle.error:  # e.g. the database refused it: where the text is
        st.error(f"{t('errors.storage')}: {plain(handle.error)}"
                 if handle.job.recovery_file else plain(handle.error))
    row = ctx.store.get(article_id) if article_id is not None else None
    if article_id is not None and row is None:
        if handle is not None:  # deleted (another tab, the CLI) while it was being written
            st.info(t("write.deleted", id=article_id))
        st.session_state.pop("article_id", None)
        st.query_params.pop("article", None)
    elif row is not None and row["status"] in ACTIVE:  # another process writes it
        st.subheader(t("write.last_article"))
        follow_elsewhere(article_id, ctx.store, actor, t)
    elif row is not None:
        if not streamed:
            st.subheader(t("write.last_article"))
        show_result(row, fresh=streamed)
