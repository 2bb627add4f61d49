"""History page: find saved articles (filters, full-text search that works for
Chinese), open one, export it, write again, continue or delete it. Times are the
reader's (the browser's zone, else WRITER_TIMEZONE, else UTC), and so are the dates
the list is filtered by."""
import streamlit as st

from views.brand_view import show_checks
from views.common import (
    author_label,
    current_actor,
    format_cost,
    guarded,
    page_context,
    query_id,
    reader_scope,
    registry,
    running_label,
    show_stats,
    show_status,
    stop_job,
    unit,
)
from views.following import follow_elsewhere
from views.versions_view import revise_panel, versions_panel
from writer.brief import CONTENT_TYPES, LANGUAGES, STYLE_PRESETS
from writer.io import timezones
from writer.io.export import MIME_TYPES, export, file_name
from writer.io.markup import images_as_links, plain
from writer.runs.batch import listing as batch_listing
from writer.runs.job import can_continue, delete_article
from writer.runs.pacing import progress_fraction
from writer.runs.registry import State
from writer.runs.remote import elsewhere
from writer.storage.brands import names as brand_names
from writer.storage.search import (
    COUNT_CAP,
    MAX_QUERY_CHARS,
    Filters,
    distinct,
    search,
    snippet_html,
)
from writer.storage.store import STATUSES, is_failed_request

PAGE_SIZE = 25
ALL = ""
# the less-used filters, under "More filters"
MORE_FILTERS = ("f_model", "f_provider", "f_batch", "f_brand", "f_author", "f_check_failed")

ctx = page_context()
t = ctx.t
store = ctx.store
tz = ctx.tz
actor = current_actor(ctx)
scope = reader_scope(actor, ctx.settings)  # a writer's own (WRITER_HISTORY_SCOPE=own)
# Whose articles the list may show: the author filter only when there is a choice.
authors = distinct(store, "author") if scope is None else [scope]
many_authors = len(authors) > 1
choose = t("history.choose")  # Streamlit's own placeholder is English
if st.session_state.pop("revision_started", None):  # a revision started here: watch it
    st.switch_page("views/write.py")
st.title(t("history.title"))


def option_label(prefix: str):
    return lambda v: t("history.all") if v == ALL else t(f"{prefix}.{v}") if prefix else v


query = st.text_input(t("history.search"), key="history_query", max_chars=MAX_QUERY_CHARS,
                      placeholder=t("history.search_placeholder"))
cols = st.columns([1, 1, 1, 1.4])
content_type = cols[0].selectbox(t("write.content_type"), (ALL, *CONTENT_TYPES),
                                 format_func=option_label("content_types"), key="f_type",
                                 placeholder=choose)
status = cols[1].selectbox(t("history.col_status"), (ALL, *STATUSES),
                           format_func=option_label("statuses"), key="f_status",
                           placeholder=choose)
language = cols[2].selectbox(t("write.language"), (ALL, *LANGUAGES),
                             format_func=option_label("languages"), key="f_language",
                             placeholder=choose)
dates = cols[3].date_input(t("history.dates"), value=(), key="f_dates", format="YYYY-MM-DD",
                           help=t("history.dates_help", zone=getattr(tz, "key", str(tz))))
since = dates[0] if len(dates) > 0 else None
until = dates[1] if len(dates) > 1 else since

batch_list = {b["id"]: b for b in batch_listing(store, limit=200, author=scope)}
linked_batch = query_id("batch", t)  # None, with a message, for ?batch=² or a huge number
# A link (the Batch page, a reload) sets the filter; the filter sets the link. The
# widget's state is dropped while another page runs, so a link applies again then.
if linked_batch in batch_list and (st.session_state.get("f_batch_link") != str(linked_batch)
                                   or "f_batch" not in st.session_state):
    st.session_state["f_batch"] = linked_batch
    st.session_state["f_batch_link"] = str(linked_batch)
# The less-used filters: folded away, open (and counted in the label) while one is set.
more_set = sum(1 for key in MORE_FILTERS if st.session_state.get(key))
more_label = (t("history.more_filters_set", count=more_set) if more_set
              else t("history.more_filters"))
with st.expander(more_label, expanded=bool(more_set), icon=":material/filter_list:"):
    more = st.columns(3)
    more_b = st.columns([2, 2, 1] if many_authors else [2, 1], vertical_alignment="bottom")
    model = more[0].selectbox(t("history.col_model"), (ALL, *distinct(store, "model")),
                              format_func=option_label(""), key="f_model", placeholder=choose)
    provider = more[1].selectbox(t("app.sidebar_provider"), (ALL, *distinct(store, "provider")),
                                 format_func=option_label(""), key="f_provider",
                                 placeholder=choose)
    batch = more[2].selectbox(t("history.col_batch"), (ALL, *batch_list), key="f_batch",
                              format_func=lambda b: t("history.all") if b == ALL
                              else f"#{b} · {batch_list[b]['file_name']}", placeholder=choose)
    brand = more_b[0].selectbox(t("history.col_brand"), (ALL, *brand_names(store)),
                                format_func=option_label(""), key="f_brand", placeholder=choose)
    author = more_b[1].selectbox(t("auth.author_filter"), (ALL, *authors), key="f_author",
                                 format_func=lambda v: t("history.all") if v == ALL
                                 else author_label(v, t), placeholder=choose) \
        if many_authors else ALL
    check_failed = more_b[-1].checkbox(t("history.check_failed"), key="f_check_failed")
if batch != ALL:
    st.query_params["batch"] = st.session_state["f_batch_link"] = str(batch)
else:
    st.query_params.pop("batch", None)
    st.session_state.pop("f_batch_link", None)
filters = Filters(query=query, content_type=content_type or None, status=status or None,
                  model=model or None, provider=provider or None, language=language or None,
                  since=since, until=until, batch_id=batch or None, tz=tz,
                  brand=brand or None, check_failed=check_failed,
                  author=scope or author or None)

page_number = st.session_state.get("history_page", 1)
result = search(store, filters, limit=PAGE_SIZE, offset=(page_number - 1) * PAGE_SIZE)
if not result.rows and page_number > 1:  # the filters changed under a later page
    st.session_state["history_page"] = page_number = 1
    result = search(store, filters, limit=PAGE_SIZE)
if not result.rows:
    st.info(t("history.no_match") if filters.narrowed else t("history.empty"))
    st.stop()

exact = result.total is not None and result.total <= COUNT_CAP  # a number ("1 article")
caption = t("history.total", count=result.total if exact else result.total_label)
if result.uses_fallback:
    caption += " · " + t("history.short_query")
st.caption(caption)


def row_status(r: dict, handle=None) -> str:
    """A listed row's status; a request the provider refused is no article."""
    if handle is None and is_failed_request(r):
        return t("history.failed_request")
    return t(f"statuses.{handle.status if handle else r['status']}")


# Widths for a 1280 px window, whose main area is ~810 px: every column shown fits
# without scrolling sideways, the topic gets the rest (all grow alike when wider).
# The model is hidden (shown when opened; the table's toolbar can show the column).
FIT_PX = 810
WIDTHS = {"col_id": 46, "col_created": 124, "col_status": 74 if t.language == "zh" else 100,
          "col_words": 92 if t.language == "zh" else 138, "col_cost": 88,
          "col_type": 100 if t.language == "zh" else 124}
if many_authors:  # the Author column: the topic gives up the room
    WIDTHS["col_author"] = 96
WIDTHS["col_topic"] = max(170, FIT_PX - sum(WIDTHS.values()))
COLUMN_CONFIG = {t(f"auth.{key}" if key == "col_author" else f"history.{key}"):
                 st.column_config.Column(width=width)
                 for key, width in WIDTHS.items()} | {t("history.col_model"): None}


terms = filters.terms()
if terms:  # search results with the matches highlighted
    for r in result.rows:
        full = store.get(r["id"]) or {"content": ""}  # deleted since the search ran
        # snippet_html escapes Markdown too: a topic's [text](link) stays text
        st.markdown(f"**#{r['id']} · {snippet_html(r['topic'], terms, 80)}** · "
                    f"<small>{timezones.local(r['created_at'], tz)} · {row_status(r)}</small>  \n"
                    f"<small>{snippet_html(full['content'], terms)}</small>",
                    unsafe_allow_html=True)
else:
    live = {h.article_id: h for h in registry().active()}
    listed_live = [r["id"] for r in result.rows if r["id"] in live]

    @st.fragment(run_every=1.0 if listed_live else None)
    @guarded
    def history_table() -> None:
        """The list; rows being written show their live status and words (every second)."""
        if any(live[i].state == State.DONE for i in listed_live):
            st.rerun(scope="app")  # one has ended: its saved row replaces the live one
        table = []
        for r in result.rows:
            handle = live.get(r["id"])
            words = handle.words if handle else r["words"]
            no_text = handle is None and is_failed_request(r)  # a refused request: no cost
            table.append({
                t("history.col_id"): r["id"],
                t("history.col_created"): timezones.local(r["created_at"], tz),
                t("history.col_topic"): r["topic"],
                t("history.col_status"): row_status(r, handle),
                t("history.col_words"): "–" if no_text else
                f"{words} / {r['target_words']} {unit(t, r['language'])}",
                t("history.col_cost"): "–" if no_text else
                format_cost(r["cost"], r["currency"], t),
                t("history.col_type"): t(f"content_types.{r['content_type']}"),
                t("history.col_model"): r["model"],
            } | ({t("auth.col_author"): author_label(r.get("author"), t)} if many_authors else {}))
        st.dataframe(table, hide_index=True, width="stretch", column_config=COLUMN_CONFIG)

    history_table()
known = result.total if result.total is not None else result.offset + len(result.rows)
pages = max(page_number + result.has_more, -(-min(known, 1000) // PAGE_SIZE))
if pages > 1:
    st.number_input(t("history.page"), min_value=1, max_value=pages, key="history_page")

ids = [r["id"] for r in result.rows]
requested = query_id("id", t)
default = ids.index(requested) if requested in ids else 0
topics = {r["id"]: r["topic"] for r in result.rows}
chosen = st.selectbox(t("history.open"), ids, index=default, key="open_article",
                      format_func=lambda i: f"#{i} · {topics[i]}", placeholder=choose)
row = store.get(chosen)
if row is None:
    st.error(t("history.not_found", id=chosen))
    st.stop()
st.query_params["id"] = str(chosen)

refused = is_failed_request(row)  # the provider refused: there is no article to show

st.divider()
st.subheader(plain(row["topic"]))
show_status(row, t)
type_label = t(f"content_types.{row['content_type']}")
style_label = t(f"styles.{row['style']}") if row["style"] in STYLE_PRESETS else row["style"]
st.caption(f"{t('write.content_type')}: {type_label} · {t('write.style')}: {plain(style_label)} · "
           f"{t('write.language')}: {t('languages.' + row['language'])} · "
           f"{t('history.audience')}: {plain(row['audience'] or '–')} · "
           f"{t('history.keywords')}: {plain(', '.join(row['keywords']) or '–')} · "
           f"{plain(row['provider'])} / {plain(row['model'])} · "
           f"{timezones.local(row['created_at'], tz, seconds=True)} · "
           f"{t('auth.col_author')}: {plain(author_label(row.get('author'), t))}")
if refused:
    st.caption(t("history.failed_request_next"))
else:
    show_stats(row, t)
show_checks(row, t, key="history_checks")
if row.get("outline") and not refused:
    with st.expander(t("write.outline")):
        st.markdown(images_as_links(row["outline"]))


def write_again() -> None:
    """Fill the Write form with this article's settings."""
    preset = row["style"] in STYLE_PRESETS
    st.session_state.update(
        topic=row["topic"], content_type=row["content_type"],
        style=row["style"] if preset else "custom", custom_style="" if preset else row["style"],
        target_words=row["target_words"], language=row["language"],
        audience=row["audience"] or "", keywords=", ".join(row["keywords"]))


mine = actor.may_change(row.get("author"))  # continue, delete, stop, revise: its author's
actions = st.columns(3)
if actions[0].button(t("history.write_again"), icon=":material/replay:"):
    write_again()
    st.switch_page("views/write.py")
if can_continue(row) and not refused and mine:
    if actions[1].button(t("write.continue"), key=f"history-continue-{chosen}",
                         icon=":material/play_arrow:"):
        st.session_state["continue_id"] = chosen
        st.switch_page("views/write.py")
if mine and actions[2].button(t("history.delete"), icon=":material/delete:",
                              key=f"delete-{chosen}"):
    st.session_state["confirm_delete"] = chosen
if st.session_state.get("confirm_delete") == chosen:
    st.warning(t("history.delete_confirm", id=chosen))
    yes, no = st.columns(2)
    # A job still writing it here stops first; None: refused (e.g. a locked database).
    if yes.button(t("history.delete_yes"), type="primary", key=f"delete-yes-{chosen}") and \
            guarded(delete_article)(ctx.settings, chosen, actor=current_actor()) is not None:
        st.session_state.pop("confirm_delete")
        st.query_params.pop("id", None)
        st.toast(t("history.deleted", id=chosen))
        st.rerun()
    if no.button(t("history.delete_no"), key=f"delete-no-{chosen}"):
        st.session_state.pop("confirm_delete")
        st.rerun()

running = registry().get(chosen)
if running is not None and running.state != State.DONE:
    @st.fragment(run_every=1.0)
    @guarded
    def live_article() -> None:
        """The article as it is being written, refreshed every second, with Stop."""
        if running.state == State.DONE:
            st.rerun(scope="app")
        st.progress(progress_fraction(running.words, running.target_words),
                    text=running_label(running, t))
        if mine:
            st.button(t("write.stop"), key=f"history-stop-{chosen}",
                      icon=":material/stop_circle:", on_click=stop_job, args=(chosen,),
                      disabled=running.stopping)
        st.markdown(images_as_links(running.feed.text))

    live_article()
    st.stop()
if running is None and row["status"] in ("queued", "streaming") and elsewhere(registry(), chosen):
    follow_elsewhere(chosen, store, actor, t)  # another process writes it: its drafts, Stop
    st.stop()

if refused:  # nothing to read or download
    st.stop()
rendered, raw = st.tabs([t("write.rendered"), t("history.raw_tab")])
rendered.markdown(images_as_links(row["content"]))
raw.code(row["content"], language="markdown", wrap_lines=True)
downloads = st.columns(4)
for column, fmt in zip(downloads, ("md", "txt", "html", "docx")):
    # Built when clicked (on another thread), not on every render of the page.
    column.download_button(t(f"history.download_{fmt}"), data=lambda fmt=fmt: export(row, fmt)[0],
                           file_name=file_name(row, fmt), mime=MIME_TYPES[fmt],
                           key=f"download-{fmt}-{chosen}", on_click="ignore")

# Versions (draft, variants, revisions): compare, make one current, or write a new one
# (it streams on the Write page).
st.divider()
versions_panel(row, t, store, ctx.tz, mine=mine)
if mine:
    revise_panel(row, t, key_prefix="history-")
