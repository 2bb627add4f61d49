"""History page: saved articles, newest first; open one to read, copy or download it."""
import streamlit as st

from pages.common import format_cost, page_context, show_article, show_stats, show_status
from writer.brief import STYLE_PRESETS
from writer.jobs import CONTINUABLE

PAGE_SIZE = 50

ctx = page_context()
t = ctx.t
store = ctx.store()
st.title(t("history.title"))

total = store.count()
if not total:
    st.info(t("history.empty"))
    st.stop()

pages = max(1, -(-total // PAGE_SIZE))
page = st.number_input(t("history.page"), min_value=1, max_value=pages, value=1) if pages > 1 else 1
rows = store.recent(limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
st.caption(t("history.total", count=total))
st.dataframe(
    [
        {
            t("history.col_id"): r["id"],
            t("history.col_created"): r["created_at"][:19].replace("T", " "),
            t("history.col_topic"): r["topic"],
            t("history.col_type"): t(f"content_types.{r['content_type']}"),
            t("history.col_language"): r["language"],
            t("history.col_status"): t(f"statuses.{r['status']}"),
            t("history.col_words"): f"{r['words']} / {r['target_words']}",
            t("history.col_model"): r["model"],
            t("history.col_tokens"): f"{r['input_tokens'] or 0} / {r['output_tokens'] or 0}",
            t("history.col_cost"): format_cost(r["cost"], r["currency"], t),
        }
        for r in rows
    ],
    hide_index=True,
    width="stretch",
)

ids = [r["id"] for r in rows]
requested = st.query_params.get("id")
default = ids.index(int(requested)) if requested and requested.isdigit() and int(requested) in ids else 0
chosen = st.selectbox(t("history.open"), ids, index=default,
                      format_func=lambda i: next(f"#{r['id']} · {r['topic']}" for r in rows if r["id"] == i))
row = store.get(chosen)
if row is None:
    st.error(t("history.not_found", id=chosen))
    st.stop()
st.query_params["id"] = str(chosen)
st.divider()
show_status(row, t)
show_stats(row, t)
type_label = t(f"content_types.{row['content_type']}")
style_label = t(f"styles.{row['style']}") if row["style"] in STYLE_PRESETS else row["style"]
st.caption(f"{t('write.content_type')}: {type_label} · "
           f"{t('write.style')}: {style_label} · {t('write.language')}: {row['language']} · "
           f"{row['provider']} / {row['model']}")
if row["status"] in CONTINUABLE and row["content"]:
    if st.button(t("write.continue"), key=f"history-continue-{chosen}", icon=":material/play_arrow:"):
        st.session_state["continue_id"] = chosen
        st.switch_page("pages/write.py")
show_article(row, t, key=f"history-{chosen}")
