"""Usage & cost page: tokens and cost for a period, grouped; budgets and burn-down;
cost per article; unpriced articles; CSV export; today's-prices recalculation.
Dates are the reader's (the browser's zone, else WRITER_TIMEZONE, else UTC): the
period is local dates and a day is a local day. A request refused with no text is
counted apart from the articles (its tokens and cost, if any, still count)."""
import datetime as dt

import streamlit as st

from views.common import author_label, current_actor, format_cost, page_context
from writer.io import timezones
from writer.storage import usage
from writer.storage.prices import price_table

LOCAL = "local"  # the bundled model's "currency": free, nothing to chart or to budget

ctx = page_context()
t = ctx.t
store = ctx.store
tz = ctx.tz
zone_name = getattr(tz, "key", str(tz))
actor = current_actor(ctx)
own = None if actor.is_admin else actor.name  # a writer's own figures; an admin's: everyone's
st.title(t("usage.title"))
if own:
    st.caption(t("auth.own_usage"))

today = timezones.today(tz)
left, right = st.columns([2, 1])
period = left.date_input(t("usage.period"), value=(today.replace(day=1), today),
                         key="usage_period", format="YYYY-MM-DD",
                         help=t("usage.period_help", zone=zone_name))
since = period[0] if len(period) > 0 else None
until = period[1] if len(period) > 1 else since
# By author: its own table below, for admins (a writer's figures are all their own).
by = right.selectbox(t("usage.group_by"), tuple(g for g in usage.GROUPS if g != "author"),
                     key="usage_by",
                     format_func=lambda k: t(f"usage.by_{k}"), placeholder=t("app.choose"))
by = by or "day"

totals = usage.totals(store, since, until, tz, author=own)
costs = {c: amount for c, amount in sorted(totals["cost"].items()) if c != LOCAL}
# Metrics in rows that wrap: the counts on one line, the costs (one per currency) on
# the next; at 1280 px (main area ~820 px) nothing is crushed or cut off.
metric = dict(border=True)
with st.container(horizontal=True, gap="small"):
    st.metric(t("usage.articles"), f"{totals['articles']:,}", **metric)
    st.metric(t("usage.failed_requests"), f"{totals['failed_requests']:,}",
              help=t("usage.failed_help"), **metric)
    st.metric(t("write.stat_input_tokens"), f"{totals['input_tokens']:,}", **metric)
    st.metric(t("write.stat_output_tokens"), f"{totals['output_tokens']:,}", **metric)
if costs:
    with st.container(horizontal=True, gap="small"):
        for currency, amount in costs.items():
            st.metric(t("usage.cost_in", currency=currency), format_cost(amount, currency, t),
                      width=280, **metric)
if totals["estimated"]:
    st.caption(t("usage.estimated_note", count=totals["estimated"]))
if totals["unpriced"]:
    st.warning(t("usage.unpriced_note", count=totals["unpriced"]))

# Budgets: this (local) month's spend against each currency's budget, and the burn-down:
# the team's for an admin, a writer's own (Settings, budgets per person) for a writer.
team_budgets = store.budgets() if own is None else \
    {b["currency"]: b["monthly_amount"] for b in store.person_budgets(own)}
for currency, budget in sorted(team_budgets.items()):
    status = usage.budget_status(store, currency, tz=tz, author=own)
    if status is None:
        continue
    st.subheader(t("usage.budget_title", currency=currency))
    st.progress(min(1.0, status["ratio"]), text=t(
        "usage.budget_text", spent=f"{status['spent']:.2f}", budget=f"{budget:.2f}",
        currency=currency, percent=round(status["ratio"] * 100)))
    burn = usage.burn_down(store, currency, tz=tz, author=own)
    st.line_chart({t("usage.spent"): {n: r["spent"] for n, r in enumerate(burn, 1)},
                   t("usage.even_pace"): {n: r["even_pace"] for n, r in enumerate(burn, 1)}},
                  x_label=t("usage.day_of_month"), height=220)

rows = usage.by_group(store, by, since, until, tz, author=own)
if not rows:
    st.info(t("usage.empty"))
    st.stop()


def group_label(group) -> str:
    if group is None or group == "":
        return "–"
    if by == "type" and t.has(f"content_types.{group}"):
        return t(f"content_types.{group}")
    return str(group)


# The charts' groups, in order. Days: every day of the period (a day with nothing
# shows as nothing, not left out), "11-26" when the period is within one year.
if by == "day" and since and until and (until - since).days < 93:
    days = [since + dt.timedelta(days=n) for n in range((until - since).days + 1)]
    short = since.year == until.year
    chart_groups = {d.isoformat(): d.strftime("%m-%d") if short else d.isoformat() for d in days}
else:
    chart_groups = {r["group"]: group_label(r["group"]) for r in rows}


def chart(values: dict) -> dict:
    """{label: value} over every chart group (0 where `values` has none)."""
    return {label: values.get(group, 0) for group, label in chart_groups.items()}


st.subheader(t("usage.by_title", group=t(f"usage.by_{by}")))
# Cost per group, one chart per currency that has a cost to show: not the local
# model's (always 0), not a currency whose costs in the period are all 0.
charted = sorted({r["currency"] for r in rows
                  if r["currency"] and r["currency"] != LOCAL and r["cost"]})
for currency in charted:
    st.caption(t("usage.cost_in", currency=currency))
    st.bar_chart(chart({r["group"]: r["cost"] or 0 for r in rows if r["currency"] == currency}),
                 horizontal=by != "day", height=240)
if not charted:
    st.caption(t("usage.no_cost_chart"))
tokens = {}
for r in rows:
    entry = tokens.setdefault(r["group"], {"input": 0, "output": 0})
    entry["input"] += r["input_tokens"]
    entry["output"] += r["output_tokens"]
st.caption(t("usage.tokens_chart"))
st.bar_chart({t("write.stat_input_tokens"): chart({k: v["input"] for k, v in tokens.items()}),
              t("write.stat_output_tokens"): chart({k: v["output"] for k, v in tokens.items()})},
             horizontal=by != "day", height=240)

# The table and its CSV: the same headings (the UI language) and labels.
headers = {"group": t(f"usage.col_{by}"), "currency": t("usage.currency"),
           "articles": t("usage.articles"), "failed_requests": t("usage.failed_requests"),
           "input_tokens": t("write.stat_input_tokens"),
           "output_tokens": t("write.stat_output_tokens"), "cost": t("write.stat_cost"),
           "estimated_articles": t("usage.estimated_col"),
           "unpriced_articles": t("usage.unpriced_col")}
values = {"group": {r["group"]: group_label(r["group"]) for r in rows},
          "currency": {None: t("write.unpriced"), LOCAL: t("usage.local")}}
st.dataframe(usage.labelled(rows, headers, values), hide_index=True, width="stretch",
             column_config={headers["cost"]: st.column_config.NumberColumn(format="%.6f")})
st.download_button(t("usage.csv"),
                   data=usage.to_csv(rows, headers, values, bom=True).encode("utf-8"),
                   file_name=f"usage-{by}-{since}-{until}.csv", mime="text/csv",
                   key="usage-csv", on_click="ignore", icon=":material/download:")

if own is None:  # an admin: who spent what in the period
    people = usage.by_group(store, "author", since, until, tz)
    if people:
        st.subheader(t("auth.by_author_title"))
        by_headers = headers | {"group": t("auth.col_author")}
        st.dataframe(usage.labelled(people, by_headers, values | {"group": {
            r["group"]: author_label(r["group"], t) for r in people}}),
            hide_index=True, width="stretch",
            column_config={headers["cost"]: st.column_config.NumberColumn(format="%.6f")})

with st.expander(t("usage.per_article")):
    def topic(a: dict) -> str:
        marks = [t("usage.failed_mark")] if a["failed_request"] else []
        marks += [t("usage.deleted")] if a["deleted"] else []
        return a["topic"] + "".join(f" ({m})" for m in marks)

    st.dataframe([{
        "#": a["id"], t("history.col_created"): timezones.local(a["created_at"], tz),
        t("history.col_topic"): topic(a), t("history.col_model"): a["model"],
        t("history.col_tokens"): f"{a['input_tokens'] or 0} / {a['output_tokens'] or 0}"
        + ("" if a["usage_source"] == "reported" else f" ({t('write.estimated')})"),
        t("write.stat_cost"): format_cost(a["cost"], a["currency"], t),
    } for a in usage.articles(store, since, until, tz=tz, author=own)], hide_index=True,
        width="stretch")

if totals["unpriced"]:
    with st.expander(t("usage.unpriced_list", count=totals["unpriced"])):
        st.dataframe([{"#": a["id"], t("history.col_topic"): a["topic"],
                       t("app.sidebar_provider"): a["provider"], t("history.col_model"): a["model"]}
                      for a in usage.articles(store, since, until, unpriced_only=True, tz=tz,
                                              author=own)],
                     hide_index=True, width="stretch")
        st.caption(t("usage.unpriced_hint"))

with st.expander(t("usage.recalc_title")):
    st.caption(t("usage.recalc_help"))
    if st.button(t("usage.recalc_button"), key="recalc"):
        table_today = price_table(ctx.settings.prices_file, store.price_edits())
        recalculated = usage.recalculate(store, table_today, since, until, tz=tz, author=own)
        charged, now = {}, {}
        for r in recalculated:
            if r["charged"] is not None:
                charged[r["charged_currency"]] = charged.get(r["charged_currency"], 0) + r["charged"]
            if r["today"] is not None:
                now[r["today_currency"]] = now.get(r["today_currency"], 0) + r["today"]
        st.dataframe([{t("usage.currency"): t("usage.local") if c == LOCAL else c,
                       t("usage.charged"): round(charged.get(c, 0), 6),
                       t("usage.today"): round(now.get(c, 0), 6)}
                      for c in sorted(set(charged) | set(now))], hide_index=True)
