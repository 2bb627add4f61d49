"""Providers page: the configured providers with a one-click connection test, the
provider check (progress, Cancel, the cost confirmed first), its graded report beside
the price, a side-by-side comparison and each provider's results over time. The
measuring is writer/runs/check.py; this page only starts it and shows it."""
import pandas as pd
import streamlit as st

from views.common import current_actor, explain_error, guarded, page_context, show_details
from writer import logs
from writer.io.markup import plain
from writer.kinds import CheckStatus
from writer.providers.base import ProviderChoiceError
from writer.providers.choice import available_providers, choose_provider, resolve_model
from writer.runs import check as checks
from writer.storage.prices import price_table

ctx = page_context()
t = ctx.t
store = ctx.store
ss = st.session_state
actor = current_actor(ctx)
# The form below is not drawn while a check runs, and Streamlit forgets the value of a
# widget a run did not draw: the choices live in session state (set here, every run,
# the widgets get no defaults of their own) so the next check starts from them.
for key, default in (("check_runs", 5), ("check_levels", [10]), ("check_prompt_set", "short")):
    ss[key] = ss.get(key, default)
st.title(t("providers.title"))
st.caption(t("providers.intro"))

GRADE_COLOURS = {"excellent": "#d3f2dc", "pass": "#fdf1c7", "fail": "#fde2e1"}  # cell backgrounds
LEVEL_CHOICES = (10, 50, 100, 200)
providers = {p.name: p for p in available_providers(ctx.settings)}
if ss.get("check_provider") in providers:
    ss["check_provider"] = ss["check_provider"]  # kept the same way
prices = price_table(ctx.settings.prices_file, store.price_edits())


def grade_text(grade: str | None) -> str:
    return t(f"providers.grade_{grade}") if grade else "–"


def grade_colour(value: str) -> str:
    """The background of a grade cell (the data grid draws on a canvas: no emoji font)."""
    for grade, colour in GRADE_COLOURS.items():
        if value == t(f"providers.grade_{grade}"):
            return f"background-color: {colour}"
    return ""


def grade_counts(grades: dict) -> str:
    found = [g for g in ("excellent", "pass", "fail") if g in grades.values()]
    return " · ".join(f"{t('providers.grade_' + g)} {list(grades.values()).count(g)}"
                      for g in found) or "–"


def ms(value) -> str:
    if value is None:
        return "–"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def price_text(provider) -> str:
    if provider.kind == "local":
        return t("providers.free")
    price = prices.lookup(provider.model, provider.name)
    if price is None:
        return t("providers.unpriced")
    return t("providers.price", input=f"{price.input_per_1m:g}", output=f"{price.output_per_1m:g}",
             currency=price.currency)


# -- configured providers -------------------------------------------------------------
@guarded
def test_connection(name: str) -> None:
    now = page_context()
    try:
        provider = resolve_model({p.name: p for p in available_providers(now.settings)}[name])
    except (ProviderChoiceError, KeyError) as exc:
        ss.setdefault("connection_tests", {})[name] = {"ok": False, "error": str(exc),
                                                       "error_kind": "other"}
        return
    ss.setdefault("connection_tests", {})[name] = checks.connection_test(
        now.settings, provider, actor=current_actor(now))


st.subheader(t("providers.configured"))
for name, provider in providers.items():
    with st.container(border=True):
        info, result, action = st.columns([5, 4, 3], vertical_alignment="center")
        where = t("providers.local_where") if provider.kind == "local" else \
            logs.redact(provider.base_url or checks.OPENAI_URL)  # no user, password or token
        shown = t("providers.local_name") if provider.kind == "local" else provider.title
        info.markdown(f"**{shown}** · `{provider.model or '?'}`  \n{where}  \n"
                      f"{price_text(provider)} · "
                      f"{t('providers.max_streams', count=provider.max_streams)}")
        tested = ss.get("connection_tests", {}).get(name)
        if tested:
            if tested.get("ok"):
                result.success(t("providers.test_ok", connect=ms(tested.get("connect_ms")),
                                 ttft=ms(tested.get("ttft_ms"))))
            else:
                hint, detail = explain_error(tested, t)
                with result:
                    st.error(t("providers.test_failed",
                               error=hint or plain(logs.redact(tested.get("error") or "?"))))
                    if detail:
                        show_details(detail, t)
        action.button(t("providers.test"), key=f"test-{name}", on_click=test_connection,
                      args=(name,), icon=":material/network_check:")

# -- run a check ---------------------------------------------------------------------
st.subheader(t("providers.check"))
running = checks.current(ctx.settings)
busy = running is not None and not running.finished.is_set()
if running is not None and running.finished.is_set() and running.error:
    st.error(t("providers.check_error", error=running.error))  # a bug: the log has the detail


@guarded
def start_check() -> None:
    now = page_context()
    provider = resolve_model(choose_provider(now.settings, ss.get("check_provider")))
    plan = checks.Plan(runs=int(ss["check_runs"]), prompt_set=ss["check_prompt_set"],
                       levels=tuple(sorted(ss.get("check_levels") or ())))
    checks.start(now.settings, provider, plan, actor=current_actor(now))
    ss["check_follow"] = True  # show the new one when it ends


@guarded
def cancel_check() -> None:
    now = page_context()
    check = checks.current(now.settings)
    if check is not None:
        check.cancel(actor=current_actor(now))


if busy:
    @st.fragment(run_every=0.5)
    @guarded
    def progress() -> None:
        check = checks.current(page_context().settings)
        if check is None or check.finished.is_set():
            st.rerun(scope="app")
        st.progress(check.done / max(1, check.total),
                    text=t("providers.progress", done=check.done, total=check.total,
                           phase=t(f"providers.phase_{check.phase.split('_')[0]}"),
                           provider=check.provider.title))
        if actor.may_change(check.actor.name):  # someone else's check: watched only
            st.button(t("providers.cancel"), on_click=cancel_check, icon=":material/cancel:",
                      disabled=check.cancelled, key="check-cancel")

    progress()
else:
    left, right = st.columns(2)
    with left:
        name = st.selectbox(t("write.provider"), list(providers),
                            placeholder=t("app.choose"), key="check_provider",
                            format_func=lambda n: t("write.provider_local") if n == "local"
                            else providers[n].label())
        st.slider(t("providers.runs"), 1, 20, key="check_runs", help=t("providers.runs_help"))
    with right:
        st.multiselect(t("providers.levels"), LEVEL_CHOICES, key="check_levels",
                       help=t("providers.levels_help"), placeholder=t("providers.levels_none"))
        st.radio(t("providers.prompt_set"), ("short", "long"), horizontal=True,
                 key="check_prompt_set", format_func=lambda k: t(f"providers.prompt_set_{k}"))
    provider = providers[name]
    try:
        plan = checks.Plan(runs=int(ss.get("check_runs", 5)),
                           prompt_set=ss.get("check_prompt_set", "short"),
                           levels=tuple(sorted(ss.get("check_levels") or ())))
        guess = checks.estimate(plan, provider, ctx.settings, store)
    except checks.CheckError as exc:
        st.error(t("providers.start_failed"))
        show_details(str(exc), t)
        guess = None
    confirmed = True
    if guess is not None:
        if not guess.paid:
            cost = t("providers.free")
        elif guess.cost is None:
            cost = t("providers.unpriced")
        else:
            cost = f"≤ {guess.cost:.4f} {guess.currency}"
        st.info(t("providers.estimate", requests=guess.requests, input=f"{guess.input_tokens:,}",
                  output=f"{guess.output_tokens:,}", cost=cost))
        if guess.paid and provider.kind != "local":
            confirmed = st.checkbox(t("providers.confirm", cost=cost),
                                    key=f"check_confirm_{name}_{guess.requests}")
    st.button(t("providers.run"), type="primary", icon=":material/speed:", on_click=start_check,
              disabled=not confirmed or guess is None, key="check-run")

# -- the report ----------------------------------------------------------------------
saved = checks.history(store, limit=500)
if saved:
    by_id = {row["id"]: row for row in saved}
    newest = saved[-1]["id"]
    if ss.get("check_follow") and not busy:  # the check this session started has ended
        del ss["check_follow"]
        if running is not None and running.saved_id in by_id:
            ss["check_shown"] = running.saved_id
    if ss.get("check_shown") not in by_id:
        ss["check_shown"] = newest
    st.subheader(t("providers.report"))
    shown_id = st.selectbox(t("providers.report_pick"), list(reversed(by_id)),
                            placeholder=t("app.choose"), key="check_shown",
                            format_func=lambda i: f"#{i} · {by_id[i]['provider']} · "
                            f"{by_id[i]['model']} · {by_id[i]['created_at'][:16].replace('T', ' ')}"
                            f" UTC · {t('providers.status_' + by_id[i]['status'])}")
    report = by_id[shown_id]["report"]
    grades = report.get("grades", {})
    price = report.get("price")
    if price is None:
        st.caption(t("providers.unpriced"))
    elif price["currency"] == "local":
        st.caption(t("providers.free"))
    else:
        st.caption(t("providers.price", input=f"{price['input_per_1m']:g}",
                     output=f"{price['output_per_1m']:g}", currency=price["currency"]))
    ttft = report.get("ttft_ms") or {}
    rows = [
        (t("providers.m_connect"), ms(report.get("connect_ms")), grades.get("connect_ms"),
         "< 2 s / < 1 s"),
        (t("providers.m_ttft"), f"p50 {ms(ttft.get('p50'))} · p95 {ms(ttft.get('p95'))} · "
         f"max {ms(ttft.get('max'))}" if ttft else "–", grades.get("ttft_ms"), "p95 < 3 s / < 1.5 s"),
        (t("providers.m_itl"), f"{ms(report.get('itl_mean_ms'))} · p95 {ms(report.get('itl_p95_ms'))}"
         f" · {t('providers.longest')} {ms(report.get('max_gap_ms'))}", None, ""),
        (t("providers.m_cv"), "–" if report.get("itl_cv") is None else f"{report['itl_cv']:.2f}",
         grades.get("itl_cv"), "< 0.5 / < 0.3"),
        (t("providers.m_interruptions"), "–" if report.get("interruption_rate") is None else
         f"{report['interruptions']} ({report['interruption_rate'] * 100:.2f} %)",
         grades.get("interruption_rate"), "< 1 % / < 0.1 %"),
        (t("providers.m_speed"), "–" if report.get("tokens_per_s") is None else
         f"{report['tokens_per_s']:.1f}", None, ""),
    ]
    for level, result in (report.get("concurrency") or {}).items():
        passing, excellent = checks.level_thresholds(int(level))
        rows.append((t("providers.m_level", level=level),
                     t("providers.level_value", rate=f"{result['success_rate'] * 100:.0f}",
                       ttft=ms(result.get("ttft_p95_ms"))),
                     grades.get(f"concurrency_{level}"),
                     f"≥ {passing * 100:.0f} % / ≥ {excellent * 100:.0f} %"))
    frame = pd.DataFrame([{t("providers.col_metric"): a, t("providers.col_value"): b,
                           t("providers.col_grade"): grade_text(c),
                           t("providers.col_thresholds"): d} for a, b, c, d in rows])
    st.dataframe(frame.style.map(grade_colour, subset=[t("providers.col_grade")]),
                 hide_index=True, width="stretch")
    usage = report.get("usage") or {}
    cost = usage.get("cost")
    st.caption(t("providers.check_usage", input=f"{usage.get('input_tokens', 0):,}",
                 output=f"{usage.get('output_tokens', 0):,}",
                 cost="–" if cost is None else f"{cost:.4f} {usage.get('currency')}",
                 seconds=f"{report.get('duration_s', 0):.0f}"))
    if report.get("errors"):
        with st.expander(t("providers.errors", count=len(report["errors"]))):
            st.code(logs.redact("\n".join(report["errors"])), wrap_lines=True)

    # -- side by side, and over time ----------------------------------------------------
    latest = checks.latest(store)
    if latest:
        st.subheader(t("providers.compare"))
        table = []
        for row in latest:
            r = row["report"]
            levels = r.get("concurrency") or {}
            pr = r.get("price")
            table.append({
                t("providers.col_provider"): f"{row['provider']} · {row['model']}",
                t("providers.col_when"): row["created_at"][:16].replace("T", " "),
                t("providers.m_connect"): ms(row["connect_ms"]),
                t("providers.m_ttft") + " p95": ms(row["ttft_p95_ms"]),
                t("providers.m_cv"): "–" if row["itl_cv"] is None else f"{row['itl_cv']:.2f}",
                t("providers.m_speed"): "–" if row["tokens_per_s"] is None
                else f"{row['tokens_per_s']:.0f}",
                t("providers.col_success"): " · ".join(
                    f"{k}: {v['success_rate'] * 100:.0f}%" for k, v in levels.items()) or "–",
                t("providers.col_grades"): grade_counts(r.get("grades", {})),
                t("providers.col_price"): "–" if pr is None else t("providers.free")
                if pr["currency"] == "local" else
                f"{pr['input_per_1m']:g} / {pr['output_per_1m']:g} {pr['currency']}",
            })
        st.dataframe(table, hide_index=True, width="stretch")
    st.subheader(t("providers.over_time"))
    metric = st.selectbox(t("providers.chart_metric"),
                          ("ttft_p95_ms", "connect_ms", "itl_cv", "tokens_per_s",
                           "interruption_rate"),
                          placeholder=t("app.choose"), key="check_chart_metric",
                          format_func=lambda k: t(f"providers.chart_{k}"))
    points = pd.DataFrame([{"when": pd.Timestamp(row["created_at"]),
                            "provider": f"{row['provider']} · {row['model']}",
                            "value": row[metric]} for row in saved
                           if row["status"] == CheckStatus.COMPLETED and row[metric] is not None])
    if points.empty:
        st.caption(t("providers.chart_empty"))
    else:
        st.line_chart(points, x="when", y="value", color="provider",
                      x_label=t("providers.chart_when"), y_label=t(f"providers.chart_{metric}"))
else:
    st.info(t("providers.no_checks"))
