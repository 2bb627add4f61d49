"""Batch page: upload a spreadsheet of briefs, check it, see what it will cost, start
it; follow a batch (overall progress, a live table of rows, watch any row), stop,
resume, retry failed rows, download the results. The batch runs in the server's job
registry (writer/runs/batch.py), so it goes on while the user is on other pages."""
import hashlib
import re

import pandas as pd
import streamlit as st

from views.brand_view import pick_brand
from views.common import (
    current_actor,
    explain_error,
    format_cost,
    guarded,
    page_context,
    query_id,
    reader_scope,
    registry,
    show_details,
    show_user_error,
    unit,
)
from writer.brief import CONTENT_TYPES, LANGUAGES, MAX_WORDS, MIN_WORDS, STYLE_PRESETS
from writer.io.markup import plain
from writer.io.sheet import SheetError, read_table, template_csv
from writer.io.sheet import briefs as check_rows
from writer.kinds import ACTIVE, BatchStatus, RowState, Status
from writer.providers.choice import available_providers, choose_provider
from writer.runs import batch as batches
from writer.storage import brands

ctx = page_context()
t = ctx.t
store = ctx.store
ss = st.session_state
actor = current_actor(ctx)
st.title(t("batch.title"))

NEW, OPEN = "new", "open"


def state_label(state: str) -> str:
    return t(f"statuses.{state}") if state in {s.value for s in Status} else t(f"batch.row_{state}")


def batch_label(b: dict) -> str:
    status = b["status"]
    text = t(f"batch.status_{status}")
    if status == BatchStatus.RUNNING:  # its counts move: the panel below shows them
        return f"#{b['id']} · {b['file_name']} · {text}"
    return f"#{b['id']} · {b['file_name']} · {text} · {b['completed_rows'] or 0}/{b['valid_rows']}"


# -- which view ------------------------------------------------------------------
listed = batches.listing(store, limit=100, author=reader_scope(actor, ctx.settings))
by_id = {b["id"]: b for b in listed}
linked = query_id("batch", t)  # None, with a message, for ?batch=² or a huge number
if linked in by_id and (
        ss.get("batch_link") != str(linked) or "batch_view" not in ss):  # first run of this visit
    ss["batch_link"] = str(linked)  # a link, a reload or back from another page: open that batch
    ss["batch_open"], ss["batch_view"] = linked, OPEN
if "batch_view" not in ss:
    ss["batch_view"] = OPEN if listed else NEW
view = st.segmented_control(
    t("batch.view"), (NEW, OPEN), key="batch_view", label_visibility="collapsed",
    format_func=lambda v: t("batch.view_new") if v == NEW
    else t("batch.view_open", count=len(listed)), required=True) if listed else NEW


# -- a new batch -------------------------------------------------------------------
def read_upload(upload) -> tuple:
    """The file checked once per content (a rerun does not read it again)."""
    data = upload.getvalue()
    key = hashlib.sha256(data).hexdigest()[:16]
    cached = ss.get("batch_upload")
    if cached and cached[0] == key:
        return cached
    try:
        table = read_table(data, upload.name)
    except SheetError as exc:
        ss["batch_upload"] = (key, None, exc)
    else:
        ss["batch_upload"] = (key, table, None)
    return ss["batch_upload"]


def defaults_from_form() -> dict:
    style = ss.get("batch_style", "professional")
    return {"content_type": ss.get("batch_type", "blog"), "style": style,
            "length": int(ss.get("batch_length", 800)),
            "language": ss.get("batch_language", "zh"), "audience": ss.get("batch_audience", ""),
            "brand": ss.get("batch_brand") or ""}


@guarded
def start_new(name: str, table, provider_name: str) -> None:
    """Start button: save the batch, then run it in the server's registry."""
    now = page_context()
    who = current_actor(now)
    provider = choose_provider(now.settings, provider_name)  # gone meanwhile: refused
    rows = check_rows(table, defaults_from_form(), brands.listing(now.store))
    batch_id = batches.create(now.store, file_name=name, table=table, rows=rows,
                              provider=provider, concurrency=ss.get("batch_concurrency", 4),
                              length_control=ss.get("batch_length_control", True),
                              defaults=defaults_from_form(), actor=who)
    batches.BatchRun(now.settings, batch_id, registry(), provider, actor=who).start()
    ss["batch_open"], ss["batch_view"] = batch_id, OPEN
    ss["batch_link"] = str(batch_id)
    st.query_params["batch"] = str(batch_id)
    ss.pop("batch_upload", None)
    ss["batch_uploader_key"] = ss.get("batch_uploader_key", 0) + 1  # clear the file box


def new_batch() -> None:
    left, right = st.columns([3, 2], gap="large")
    with right:
        st.markdown(t("batch.columns_help"))
        st.download_button(t("batch.template"), data=template_csv(t.language),
                            file_name=f"batch-template-{t.language}.csv", mime="text/csv",
                            icon=":material/download:", on_click="ignore")
        with st.expander(t("batch.defaults"), expanded=False):
            st.caption(t("batch.defaults_help"))
            form = {k: ss.get(k) for k in ("content_type", "style", "target_words", "language")}
            ss.setdefault("batch_type", form["content_type"] or "blog")
            ss.setdefault("batch_style", form["style"] if form["style"] in STYLE_PRESETS
                          else "professional")
            ss.setdefault("batch_length", form["target_words"] or 800)
            ss.setdefault("batch_language", form["language"] or "zh")
            st.selectbox(t("write.content_type"), CONTENT_TYPES,
                         placeholder=t("app.choose"), key="batch_type",
                         format_func=lambda k: t(f"content_types.{k}"))
            st.selectbox(t("write.style"), STYLE_PRESETS,
                         placeholder=t("app.choose"), key="batch_style",
                         format_func=lambda k: t(f"styles.{k}"))
            # No min/max on the widget (the browser would refuse silently, in English).
            length = st.number_input(t("write.length", unit=t("units.mixed")), step=50,
                                     key="batch_length")
            if not MIN_WORDS <= (length or 0) <= MAX_WORDS:
                st.error(t("brief_errors.length_range", min=MIN_WORDS, max=MAX_WORDS),
                         icon=":material/error:")
            st.radio(t("write.language"), LANGUAGES, horizontal=True, key="batch_language",
                     format_func=lambda k: t(f"languages.{k}"))
            st.text_input(t("write.audience"), key="batch_audience")
            pick_brand(store, t, key="batch_brand")
            st.caption(t("brands.batch_help"))
    with left:
        upload = st.file_uploader(t("batch.upload"), type=["csv", "xlsx"],
                                  key=f"batch_file_{ss.get('batch_uploader_key', 0)}",
                                  help=t("batch.upload_help"))
        providers = {p.name: p for p in available_providers(ctx.settings)}
        ss.setdefault("batch_provider", ss.get("provider") if ss.get("provider") in providers
                      else next(iter(providers)))
        provider_name = st.selectbox(
            t("write.provider"), list(providers), placeholder=t("app.choose"), key="batch_provider",
            format_func=lambda n: t("write.provider_local") if n == "local"
            else providers[n].label())
        provider = providers[provider_name]
        if provider.kind == "local":
            st.caption(t("batch.local_one_at_a_time"))
        st.slider(t("batch.concurrency"), 1, batches.MAX_CONCURRENCY, 4, key="batch_concurrency",
                  help=t("batch.concurrency_help"))
        st.checkbox(t("write.length_control"), value=True, key="batch_length_control",
                    help=t("write.length_control_help"))
    if upload is None:
        return
    key, table, error = read_upload(upload)
    if error:  # a limit or a zip bomb in the UI language; otherwise the reader's own line
        if error.key == SheetError.key:
            st.error(t("batch.file_error", error=plain(error)))
        else:
            show_user_error(error, t)
        return
    rows = check_rows(table, defaults_from_form(), brands.listing(store))
    mixed = [str(r.number) for r in rows if r.error == "mixed_encoding"]
    if mixed:  # named here; the table below marks each of them
        st.warning(t("batch.mixed_encoding", numbers=", ".join(mixed[:30])
                     + (" …" if len(mixed) > 30 else "")), icon=":material/warning:")
    good = [r for r in rows if r.ok]
    st.subheader(t("batch.preview", name=plain(upload.name)))
    a, b, c = st.columns(3)
    a.metric(t("batch.rows"), len(rows))
    b.metric(t("batch.rows_ready"), len(good))
    c.metric(t("batch.rows_invalid"), len(rows) - len(good))
    preview = pd.DataFrame([{
        t("batch.col_row"): r.number,
        t("batch.col_topic"): r.brief.topic if r.ok else r.cells.get(table.fields["topic"], ""),
        t("write.content_type"): t(f"content_types.{r.brief.content_type}") if r.ok else "",
        t("write.length", unit=t("units.mixed")): str(r.brief.target_words) if r.ok else r.cells.get(
            table.fields.get("length", ""), ""),
        t("write.language"): t(f"languages.{r.brief.language}") if r.ok else "",
        t("batch.col_check"): "✓" if r.ok else "✗ " + t(f"batch.error_{r.error}",
                                                         value=r.detail),
    } for r in rows])
    bad_rows = {i for i, r in enumerate(rows) if not r.ok}
    styled = preview.style.apply(
        lambda row: ["background-color: #fde2e1" if row.name in bad_rows else ""] * len(row),
        axis=1)
    st.dataframe(styled, hide_index=True, width="stretch", height=min(420, 38 + 35 * len(rows)))
    if table.columns:
        unknown = [c for c in table.columns if c not in table.fields.values()]
        if unknown:
            st.caption(t("batch.extra_columns", columns=plain(", ".join(unknown))))
    if not good:
        st.error(t("batch.nothing_to_write"))
        return
    guess = batches.estimate([r.brief for r in good], provider, ctx.settings, store)
    if guess.free:
        cost = t("batch.free")
    elif guess.cost is None:
        cost = t("batch.unpriced")
    else:
        cost = f"≈ {guess.cost:.4f} {guess.currency}"
    st.info(t("batch.estimate", rows=len(good), input=f"{guess.input_tokens:,}",
              output=f"{guess.output_tokens:,}", cost=cost))
    confirmed = True
    if guess.over_budget:
        budget = guess.budget
        st.warning(t("batch.over_budget", spent=f"{budget['spent']:.2f}",
                     budget=f"{budget['budget']:.2f}", currency=budget["currency"],
                     cost=f"{guess.cost:.2f}"))
        confirmed = st.checkbox(t("batch.budget_confirm"), key=f"batch_budget_ok_{key}")
    st.button(t("batch.start", rows=len(good)), type="primary", icon=":material/play_arrow:",
              disabled=not confirmed, on_click=start_new, args=(upload.name, table, provider_name),
              key="batch_start")


# -- one batch ---------------------------------------------------------------------
def provider_for(b: dict):
    saved = b["settings"]
    return choose_provider(ctx.settings, saved.get("provider"), saved.get("model"))


@guarded
def resume(batch_id: int, only: list[int] | None = None) -> None:
    now = page_context()
    b = batches.get(now.store, batch_id)
    provider = choose_provider(now.settings, b["settings"].get("provider"),
                               b["settings"].get("model"))
    batches.BatchRun(now.settings, batch_id, registry(), provider, only=only,
                     actor=current_actor(now)).start()


@guarded
def stop(batch_id: int) -> None:
    now = page_context()
    run = batches.current(now.settings, batch_id)
    if run is not None:
        run.stop(wait_s=5, actor=current_actor(now))
    else:  # written by another process or server: every runner pauses at its next beat
        batches.request_stop(now.settings, batch_id, actor=current_actor(now))


def eta_text(seconds) -> str:
    if seconds is None:
        return ""
    minutes = round(seconds / 60)
    return " · " + (t("batch.eta_minutes", minutes=minutes) if minutes >= 1
                    else t("batch.eta_seconds", seconds=max(1, round(seconds))))


def show_batch(batch_id: int) -> None:
    run = batches.current(ctx.settings, batch_id)
    running = run is not None and not run.done.is_set()
    elsewhere = not running and by_id[batch_id]["status"] == BatchStatus.RUNNING  # the CLI
    mine = actor.may_change(by_id[batch_id].get("author"))  # Stop, Resume: its author's

    @st.fragment(run_every=1.0 if running else 3.0 if elsewhere else None)
    @guarded
    def panel() -> None:
        run_now = batches.current(ctx.settings, batch_id)
        live = run_now is not None and not run_now.done.is_set()
        store = page_context().store  # a fragment rerun is another thread: its own connection
        if running != live:  # it started (Resume, Retry) or ended: the timer and buttons change
            st.rerun(scope="app")
        b = batches.get(store, batch_id)
        if elsewhere and b["status"] != BatchStatus.RUNNING:
            st.rerun(scope="app")  # the other process ended or died (heartbeat)
        rows = batches.rows(store, batch_id)
        found = batches.counts(rows)
        progress = run_now.progress(rows) if live else None
        # Chinese rows in 字, English rows in words: never one sum of the two.
        by_unit = progress.words_by_unit if progress else batches.words_by_unit(rows)
        words = " + ".join(f"{count:,} {t('units.zh' if counted == '字' else 'units.en')}"
                           for counted, count in by_unit.items()) or f"0 {t('units.mixed')}"
        cost = " + ".join(format_cost(v, c, t) for c, v in found["cost"].items()) or "–"
        status = BatchStatus(b["status"])
        note = b.get("note") or ""
        if status == BatchStatus.RUNNING and not live:
            st.info(t("batch.running_elsewhere"))
        elif status == BatchStatus.PAUSED:
            if note.startswith("provider_refused"):  # "provider_refused [auth]: <detail>"
                kind = re.match(r"provider_refused(?: \[(\w+)\])?", note).group(1)
                detail = note.split(": ", 1)[-1]
                hint, _ = explain_error({"error": detail, "error_kind": kind}, t)
                st.error(t("batch.paused_refused", error=hint or plain(detail)))
                show_details(detail, t)
            elif note.startswith("rate_limited"):  # "rate_limited [rate_limit]: <detail>"
                st.warning(t("batch.paused_rate_limited"))
                show_details(note.split(": ", 1)[-1], t)
            elif note.startswith("error"):
                detail = note.split(": ", 1)[-1]
                st.error(t("batch.paused_error", error=t("errors.other")))
                show_details(detail, t)
            elif note == "interrupted":
                st.warning(t("batch.paused_interrupted"))
            else:
                st.info(t("batch.paused_stopped"))
        elif status == BatchStatus.DONE:
            (st.warning if found["failed"] else st.success)(
                t("batch.done", completed=found["completed"], failed=found["failed"]))
        ended = found["ended"]
        text = t("batch.progress", done=ended, total=found["valid"], words=words,
                 cost=cost) + (eta_text(progress.eta_s) if progress else "")
        st.progress(ended / found["valid"] if found["valid"] else 1.0, text=text)
        if progress and progress.limit < run_now.concurrency:
            st.warning(t("batch.throttled", limit=progress.limit, hits=progress.throttled))
        buttons = st.container(horizontal=True, vertical_alignment="center")
        if not mine:  # a colleague's batch (scope team): followed, not run
            pass
        elif live or status == BatchStatus.RUNNING:  # here, or elsewhere (a request)
            buttons.button(t("batch.stop"), icon=":material/pause_circle:", on_click=stop,
                              args=(batch_id,), key=f"batch-stop-{batch_id}",
                              disabled=live and run_now.stopping)
            if not live:  # help: this server claims the rows nobody has claimed yet
                buttons.button(t("batch.join"), icon=":material/group_add:", on_click=resume,
                               args=(batch_id,), key=f"batch-join-{batch_id}")
        else:
            left = [r for r in rows if r["state"] != Status.FAILED and batches.needs_writing(r)]
            failed = [r["row_no"] for r in rows if r["state"] == Status.FAILED]
            if left:  # Resume also writes the failed rows again
                buttons.button(t("batch.resume", rows=len(left) + len(failed)), type="primary",
                               icon=":material/play_arrow:", on_click=resume,
                               args=(batch_id,), key=f"batch-resume-{batch_id}")
            if failed:
                buttons.button(t("batch.retry_failed", rows=len(failed)),
                                  icon=":material/replay:", on_click=resume,
                                  args=(batch_id, failed), key=f"batch-retry-{batch_id}")
        buttons.page_link("views/history.py", label=t("batch.in_history"),
                              query_params={"batch": str(batch_id)}, icon=":material/history:")
        handles = dict(run_now.in_flight) if live else {}
        topic_column = b["settings"].get("fields", {}).get("topic", "topic")
        table = []
        for r in rows:
            handle = handles.get(r["row_no"])
            state = handle.status.value if handle is not None else r["state"]
            words_now = handle.words if handle is not None else r["words"]
            error = ""
            if r["invalid"]:
                error = t(f"batch.error_{r['invalid']['code']}", value=r["invalid"]["detail"])
            elif r["state"] in (Status.FAILED, Status.TRUNCATED, Status.STOPPED):
                # zh: the hint in Chinese (the provider's English words are in the
                # article and the CSV); en: the stored message, which names the cause
                error = (r["error"] or "") if t.language == "en" else \
                    explain_error(r, t)[0] or (r["error"] or "")
            table.append({
                t("batch.col_row"): r["row_no"],
                t("batch.col_topic"): (r["brief"] or {}).get("topic") or
                r["input"].get(topic_column, ""),
                t("batch.col_status"): state_label(state),
                t("batch.col_words"): "–" if r["invalid"] else
                f"{words_now or 0} / {r['target_words'] or '–'} "
                f"{unit(t, (r['brief'] or {}).get('language'))}",
                t("batch.col_cost"): format_cost(r["cost"], r["currency"], t)
                if r["article_id"] and handle is None and state not in ACTIVE else "",
                t("batch.col_article"): f"/?article={r['article_id']}" if r["article_id"]
                else "",
                t("batch.col_error"): error,
            })
        st.dataframe(table, hide_index=True, width="stretch", height=min(560, 38 + 35 * len(table)),
                     column_config={t("batch.col_article"): st.column_config.LinkColumn(
                         display_text=r"/\?article=(\d+)")})

    panel()
    rows = batches.rows(store, batch_id)
    written = [r for r in rows if r["article_id"]]
    if written:
        watch, retry = st.columns(2)
        with watch:
            choice = st.selectbox(t("batch.watch"), [r["row_no"] for r in written],
                                  placeholder=t("app.choose"), key=f"batch-watch-{batch_id}",
                                  format_func=lambda n: f"{t('batch.col_row')} {n} · #"
                                  f"{next(r['article_id'] for r in written if r['row_no'] == n)}")
            chosen = next(r for r in written if r["row_no"] == choice)
            st.page_link("views/write.py", label=t("batch.watch_open", id=chosen["article_id"]),
                         query_params={"article": str(chosen["article_id"])},
                         icon=":material/visibility:")
        failed = [r for r in rows if r["state"] in (Status.FAILED, RowState.DELETED)]
        if failed and mine:
            with retry:
                one = st.selectbox(t("batch.retry_one"), [r["row_no"] for r in failed],
                                   placeholder=t("app.choose"), key=f"batch-retry-one-{batch_id}",
                                   format_func=lambda n: f"{t('batch.col_row')} {n}")
                st.button(t("batch.retry_one_button"), icon=":material/replay:",
                          on_click=resume, args=(batch_id, [one]),
                          key=f"batch-retry-one-go-{batch_id}")
    st.subheader(t("batch.results"))
    downloads = st.columns(3)
    labels = {name: t(f"batch.result_{name}") for name in
              ("row", "article_id", "status", "words", "target_words", "unit", "input_tokens",
               "output_tokens", "cost", "currency", "error", "article")}
    labels.update({f"unit.{language}": unit(t, language) for language in ("zh", "en")})
    labels.update({f"state.{s.value}": t(f"statuses.{s.value}") for s in Status})
    labels.update({f"state.{s.value}": t(f"batch.row_{s.value}") for s in RowState})
    for column, fmt in zip(downloads, ("csv", "xlsx", "zip")):
        column.download_button(
            t(f"batch.download_{fmt}"),
            data=lambda fmt=fmt: batches.export(page_context().store, batch_id, fmt, labels)[0],
            file_name=f"batch-{batch_id}.{fmt}", mime=batches.EXPORTS[fmt],
            key=f"batch-download-{fmt}-{batch_id}", on_click="ignore",
            icon=":material/download:")


if view == NEW:
    new_batch()
else:
    default = ss.get("batch_open") if ss.get("batch_open") in by_id else listed[0]["id"]
    ss["batch_open"] = default
    chosen = st.selectbox(t("batch.open"), list(by_id),
                          placeholder=t("app.choose"), key="batch_open",
                          format_func=lambda i: batch_label(by_id[i]))
    if st.query_params.get("batch") != str(chosen):
        st.query_params["batch"] = str(chosen)
        ss["batch_link"] = str(chosen)
    show_batch(chosen)
