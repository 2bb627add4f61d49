"""Write page: the brief form, the live stream with a word-count progress bar, the result."""
import streamlit as st

from pages.common import page_context, show_article, show_stats, show_status
from writer import usage
from writer.brief import CONTENT_TYPES, LANGUAGES, STYLE_PRESETS, Brief, BriefError
from writer.engine import Delta, Finished, Notice, Outlined
from writer.jobs import Job, JobError, can_continue
from writer.kinds import LengthOutcome, NoticeKind
from writer.pacing import Pacer, overshoot_percent, progress_fraction
from writer.providers import ProviderChoiceError, available_providers
from writer.store import StorageError

ctx = page_context()
t = ctx.t
st.title(t("write.title"))

form_col, out_col = st.columns([2, 3], gap="large")  # the stream stays in view beside the form

with form_col:
    providers = {p.name: p for p in available_providers(ctx.settings)}
    provider_name = st.selectbox(
        t("write.provider"), list(providers), key="provider",
        format_func=lambda n: t("write.provider_local") if n == "local" else providers[n].label())
    provider = providers[provider_name]
    if provider.kind == "local":
        st.info(t("write.local_notice"))
        st.caption(t("write.local_english"))
    budget = usage.budget_status_for(ctx.store, ctx.settings, provider)
    over_budget = budget is not None and budget["level"] == "over"
    if budget and budget["level"] != "ok":
        (st.error if over_budget else st.warning)(t(
            "write.budget_over" if over_budget else "write.budget_warn",
            spent=f"{budget['spent']:.2f}", budget=f"{budget['budget']:.2f}",
            currency=budget["currency"], percent=round(budget["ratio"] * 100)))

    with st.form("brief"):
        topic = st.text_input(t("write.topic"), placeholder=t("write.topic_placeholder"),
                              max_chars=500, key="topic")
        left, right = st.columns(2)
        content_type = left.selectbox(t("write.content_type"), CONTENT_TYPES, key="content_type",
                                      format_func=lambda k: t(f"content_types.{k}"))
        style_choice = right.selectbox(t("write.style"), (*STYLE_PRESETS, "custom"), key="style",
                                       format_func=lambda k: t(f"styles.{k}") if k != "custom"
                                       else t("write.style_custom"))
        custom_style = st.text_input(t("write.style_custom_text"), key="custom_style",
                                     placeholder=t("write.style_custom_placeholder"))
        # The default comes from session state, which "Write again" (History) also fills.
        st.session_state.setdefault("target_words", 800)
        target_words = left.number_input(t("write.length"), min_value=50, max_value=20000,
                                         step=50, help=t("write.length_help"), key="target_words")
        language = right.radio(t("write.language"), LANGUAGES, horizontal=True, key="language",
                               format_func=lambda k: t(f"languages.{k}"))
        audience = st.text_input(t("write.audience"), key="audience",
                                 placeholder=t("write.audience_placeholder"))
        keywords = st.text_input(t("write.keywords"), key="keywords",
                                 placeholder=t("write.keywords_placeholder"))
        length_control = st.checkbox(t("write.length_control"), value=True, key="length_control",
                                     help=t("write.length_control_help"))
        confirmed = st.checkbox(t("write.budget_confirm"), key="budget_confirm") \
            if over_budget else True
        submitted = st.form_submit_button(t("write.generate"), type="primary")


def progress_text(words: int, target: int, section: tuple[int, int] | None = None,
                  landed: str | None = None) -> str:
    if landed == LengthOutcome.ON_TARGET:  # held to the target: no "over target" alarm
        return t("write.progress_on_target", words=words, target=target)
    over = overshoot_percent(words, target)
    if over:
        text = t("write.progress_over", words=words, target=target, percent=over)
    else:
        text = t("write.progress", words=words, target=target)
    if section:  # long-form: "section 3 / 6"
        text += " · " + t("write.progress_section", number=section[0], count=section[1])
    return text


NOTICE_STYLES = {NoticeKind.FAILOVER: "warning", NoticeKind.RETRYING: "warning"}  # else info


def show_notice(slot, event: Notice) -> None:
    style = NOTICE_STYLES.get(event.kind, "info")
    getattr(slot, style)(t(f"notices.{event.kind}", message=event.message,
                           wait=f"{event.wait_s:.0f}", attempt=event.attempt,
                           max=event.max_attempts))


def stream_article(job: Job) -> bool:
    """Paint the first delta at once, then coalesce on the Pacer's budget; the
    progress bar moves on the same budget. Any rerun meanwhile (Stop, another
    click) abandons this run; `abandon_running_job` then stops the job."""
    target = job.brief.target_words
    stop_slot = st.empty()
    stop_slot.button(t("write.stop"), key="stop", icon=":material/stop_circle:")
    progress = st.progress(progress_fraction(job.words, target), text=t("write.waiting_first"))
    notice = st.empty()
    plan = st.empty()  # long-form: the outline, once it is known
    section: list[tuple[int, int]] = []  # long-form: the section being written
    pacer = Pacer()
    events = job.run()
    st.session_state["active_job"] = job

    def paced_text():
        if job.prefix:  # Continue: the text so far, then the rest as it arrives
            yield job.prefix
        pending: list[str] = []
        shown = 0
        notice_shown = False
        for event in events:
            if isinstance(event, Delta):
                pending.append(event.text)
                shown += len(event.text)
                if pacer.due(shown):
                    if notice_shown:
                        notice.empty()
                        notice_shown = False
                    yield "".join(pending)
                    pending.clear()
                    progress.progress(progress_fraction(job.words, target),
                                      text=progress_text(job.words, target, *section[-1:]))
            elif isinstance(event, Outlined):
                with plan.expander(t("write.outline"), expanded=False):
                    st.markdown(event.outline.as_markdown())
            elif isinstance(event, Notice) and event.kind == NoticeKind.SECTION:
                section.append((event.attempt, event.max_attempts))
                progress.progress(progress_fraction(job.words, target),
                                  text=progress_text(job.words, target, section[-1]))
            elif isinstance(event, Notice):
                show_notice(notice, event)
                notice_shown = True
            elif isinstance(event, Finished):
                if pending:
                    yield "".join(pending)
                notice.empty()
                progress.progress(progress_fraction(job.words, target),
                                  text=progress_text(job.words, target,
                                                     landed=event.length_outcome))

    try:
        st.write_stream(paced_text())
        failure = None
    except StorageError as exc:  # the database refused the article: say where its text is
        failure = exc
    finally:
        events.close()  # a rerun or Stop: close the provider stream and save the partial text
    stop_slot.empty()  # nothing left to stop
    st.session_state.pop("active_job", None)
    if failure is not None:
        st.error(f"{t('errors.storage')}: {failure}")
        return False
    st.session_state["last_article_id"] = job.article_id
    return True


def show_result(row: dict, *, fresh: bool) -> None:
    show_status(row, t)
    show_stats(row, t)
    if can_continue(row):
        st.button(t("write.continue"), key=f"continue-{row['id']}", icon=":material/play_arrow:",
                  on_click=lambda: st.session_state.update(continue_id=row["id"]))
    show_article(row, t, rendered=not fresh, key="fresh" if fresh else "last")


with out_col:
    continue_id = st.session_state.pop("continue_id", None)
    if submitted:
        style = custom_style.strip() or style_choice
        try:
            brief = Brief(topic=topic, content_type=content_type, style=style,
                          target_words=int(target_words), language=language, audience=audience,
                          keywords=keywords)
        except BriefError as exc:
            st.error(t("write.invalid", error=exc))
            st.stop()
        if not confirmed:
            st.error(t("write.budget_confirm_needed"))
            st.stop()
        try:
            job = Job(brief, ctx.settings, provider=provider, length_control=length_control)
        except ProviderChoiceError as exc:  # e.g. no WRITER_MODEL and the server lists several
            st.error(str(exc))
            st.stop()
        if job.brief.language != brief.language:
            st.info(t("write.local_english_now"))
    elif continue_id:
        try:
            job = Job.continuing(continue_id, ctx.settings, provider=provider)
        except (JobError, ProviderChoiceError) as exc:
            st.error(str(exc))
            st.stop()
    else:
        job = None
    if job is not None and stream_article(job):
        row = ctx.store.get(job.article_id)
        if row is None:  # deleted (another tab, the CLI) while it was being written
            st.info(t("write.deleted", id=job.article_id))
            st.session_state.pop("last_article_id", None)
        else:
            show_result(row, fresh=True)
    elif st.session_state.get("last_article_id"):
        row = ctx.store.get(st.session_state["last_article_id"])
        if row:
            st.subheader(t("write.last_article"))
            show_result(row, fresh=False)
