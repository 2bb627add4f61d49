"""Usage & cost page: tokens and cost for a period, grouped; budgets and burn-down;
cost per article; unpriced articles; CSV export; today's-prices recalculation."""
import datetime as dt

import streamlit as st

from views.common import format_cost, page_context
from writer import usage
from writer.costs import price_table

ctx = page_context()
t = ctx.t
store = ctx.store
st.title(t("usage.title"))

today = dt.datetime.now(dt.timezone.utc).date()
left, right = st.columns([2, 1])
period = left.date_input(t("usage.period"), value=(today.replace(day=1), today),
                         key="usage_period", format="YYYY-MM-DD")
since = period[0].isoformat() if len(period) > 0 else None
until = period[1].isoformat() if len(period) > 1 else since
by = right.selectbox(t("usage.group_by"), tuple(usage.GROUPS), key="usage_by",
                     format_func=lambda k: t(f"usage.by_{k}"))

totals = usage.totals(store, since, until)
metrics = st.columns(3 + max(1, len(totals["cost"])))
metrics[0].metric(t("usage.articles"), f"{totals['articles']:,}")
metrics[1].metric(t("write.stat_input_tokens"), f"{totals['input_tokens']:,}")
metrics[2].metric(t("write.stat_output_tokens"), f"{totals['output_tokens']:,}")
for column, (currency, amount) in zip(metrics[3:], sorted(totals["cost"].items())):
    column.metric(t("usage.cost_in", currency=currency), format_cost(amount, currency, t))
if totals["estimated"]:
    st.caption(t("usage.estimated_note", count=totals["estimated"]))
if totals["unpriced"]:
    st.warning(t("usage.unpriced_note", count=totals["unpriced"]))

# Budgets: this month's spend against each currency's budget, and the burn-down.
for currency, budget in sorted(store.budgets().items()):
    status = usage.budget_status(store, currency)
    st.subheader(t("usage.budget_title", currency=currency))
    st.progress(min(1.0, status["ratio"]), text=t(
        "usage.budget_text", spent=f"{status['spent']:.2f}", budget=f"{budget:.2f}",
        currency=currency, percent=round(status["ratio"] * 100)))
    burn = usage.burn_down(store, currency)
    st.line_chart({t("usage.spent"): {n: r["spent"] for n, r in enumerate(burn, 1)},
                   t("usage.even_pace"): {n: r["even_pace"] for n, r in enumerate(burn, 1)}},
                  x_label=t("usage.day_of_month"), height=220)

rows = usage.by_group(store, by, since, until)
if not rows:
    st.info(t("usage.empty"))
    st.stop()

st.subheader(t("usage.by_title", group=t(f"usage.by_{by}")))
for currency in sorted({r["currency"] for r in rows if r["currency"]}):
    st.caption(t("usage.cost_in", currency=currency))
    st.bar_chart({str(r["group"]): r["cost"] or 0 for r in rows if r["currency"] == currency},
                 horizontal=by != "day", height=240)
tokens = {}
for r in rows:
    entry = tokens.setdefault(str(r["group"]), {"input": 0, "output": 0})
    entry["input"] += r["input_tokens"]
    entry["output"] += r["output_tokens"]
st.caption(t("usage.tokens_chart"))
st.bar_chart({t("write.stat_input_tokens"): {k: v["input"] for k, v in tokens.items()},
              t("write.stat_output_tokens"): {k: v["output"] for k, v in tokens.items()}},
             height=240)

table = [{
    t(f"usage.by_{by}"): r["group"], t("usage.currency"): r["currency"] or t("write.unpriced"),
    t("usage.articles"): r["articles"], t("write.stat_input_tokens"): r["input_tokens"],
    t("write.stat_output_tokens"): r["output_tokens"], t("write.stat_cost"): r["cost"],
    t("usage.estimated_col"): r["estimated_articles"], t("usage.unpriced_col"): r["unpriced_articles"],
} for r in rows]
st.dataframe(table, hide_index=True, width="stretch")
st.download_button(t("usage.csv"), data=usage.to_csv(rows).encode("utf-8"),
                   file_name=f"usage-{by}-{since}-{until}.csv", mime="text/csv",
                   key="usage-csv", on_click="ignore")

with st.expander(t("usage.per_article")):
    st.dataframe([{
        "#": a["id"], t("history.col_created"): a["created_at"][:16].replace("T", " "),
        t("history.col_topic"): a["topic"] + (f" ({t('usage.deleted')})" if a["deleted"] else ""),
        t("history.col_model"): a["model"],
        t("history.col_tokens"): f"{a['input_tokens'] or 0} / {a['output_tokens'] or 0}"
        + ("" if a["usage_source"] == "reported" else f" ({t('write.estimated')})"),
        t("write.stat_cost"): format_cost(a["cost"], a["currency"], t),
    } for a in usage.articles(store, since, until)], hide_index=True, width="stretch")

if totals["unpriced"]:
    with st.expander(t("usage.unpriced_list", count=totals["unpriced"])):
        st.dataframe([{"#": a["id"], t("history.col_topic"): a["topic"],
                       t("app.sidebar_provider"): a["provider"], t("history.col_model"): a["model"]}
                      for a in usage.articles(store, since, until, unpriced_only=True)],
                     hide_index=True, width="stretch")
        st.caption(t("usage.unpriced_hint"))

with st.expander(t("usage.recalc_title")):
    st.caption(t("usage.recalc_help"))
    if st.button(t("usage.recalc_button"), key="recalc"):
        table_today = price_table(ctx.settings.prices_file, store.price_edits())
        recalculated = usage.recalculate(store, table_today, since, until)
        charged, now = {}, {}
        for r in recalculated:
            if r["charged"] is not None:
                charged[r["charged_currency"]] = charged.get(r["charged_currency"], 0) + r["charged"]
            if r["today"] is not None:
                now[r["today_currency"]] = now.get(r["today_currency"], 0) + r["today"]
        st.dataframe([{t("usage.currency"): c, t("usage.charged"): round(charged.get(c, 0), 6),
                       t("usage.today"): round(now.get(c, 0), 6)}
                      for c in sorted(set(charged) | set(now))], hide_index=True)
