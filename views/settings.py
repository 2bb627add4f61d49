"""Settings page (admins only; writers have no Settings page): prices (edited prices are
stored in the database over the shipped defaults), monthly budgets per currency (each may
be a hard cap) and per person, the people who may sign in (read only: accounts are made
with `python -m writer user`), and About: the database, the API key and how to set it,
the provider and model in use, the time zone and the UI language.

Every change is a callback that passes the person acting to writer/ (`actor=`), which
refuses anyone but an admin (AccessDenied): a request that reaches a widget this page
never showed a writer is refused all the same."""
import datetime as dt

import streamlit as st

from views.common import author_label, current_actor, guarded, page_context, show_user_error
from writer import logs
from writer.access import AccessDenied
from writer.config import PROJECT_ROOT
from writer.io import timezones
from writer.io.markup import plain
from writer.providers.base import ProviderChoiceError
from writer.providers.choice import choose_provider
from writer.storage import accounts
from writer.storage.migrations import LEGACY_AUTHOR
from writer.storage.prices import ANY_PROVIDER, price_table
from writer.storage.search import distinct

CURRENCIES = ("USD", "CNY", "EUR", "GBP", "JPY", "HKD")  # offered for a price, in this order
BUDGET_CURRENCIES = ("USD", "CNY")  # always a budget field; others once a price uses them
LOCAL = "local"  # the bundled model's "currency": free, never chosen or budgeted
FLASH = "settings_flash"  # a confirmation that outlives the rerun after a save

ctx = page_context()
t = ctx.t
store = ctx.store
ss = st.session_state
choose = t("app.choose")  # Streamlit's own placeholder is English
st.title(t("settings.title"))
if not current_actor(ctx).is_admin:  # not in a writer's navigation; refused if reached
    show_user_error(AccessDenied("only an admin may change settings", action="change settings"),
                    t)
    st.stop()

flash = st.session_state.pop(FLASH, None)  # (toast, message) set by a save
if flash:
    st.toast(flash[0], icon=":material/check_circle:")  # short: a long toast says "view more"


def currency_label(code: str) -> str:
    if t.has(f"settings.currency_{code}"):
        return t("settings.currency_label", code=code, name=t(f"settings.currency_{code}"))
    return t("usage.local") if code == LOCAL else code


def provider_label(provider: str) -> str:
    return t("settings.any_provider") if provider == ANY_PROVIDER else provider


# -- prices --------------------------------------------------------------------------
st.subheader(t("settings.prices"))
st.caption(t("settings.prices_help"))
table = price_table(ctx.settings.prices_file, store.price_edits())
budgets = store.budgets()
in_use = {p.currency for p in table.rows()} | set(budgets)
currencies = [*CURRENCIES, *sorted(c for c in in_use if c not in CURRENCIES and c != LOCAL)]

rows = sorted(table.rows(), key=lambda p: (p.source != "edited", p.model, p.provider))
st.dataframe([{  # edited prices first: a saved price is the table's first rows
    t("history.col_model"): p.model, t("app.sidebar_provider"): p.provider,
    t("settings.input"): p.input_per_1m, t("settings.output"): p.output_per_1m,
    t("usage.currency"): currency_label(p.currency),
    t("settings.source"): t(f"settings.source_{p.source}"),
} for p in rows], hide_index=True, width="stretch")
if flash:
    st.success(flash[1])

@guarded
def save_price() -> None:
    """The price form's button (a callback: it runs before the page is drawn again)."""
    now = page_context()
    name = (ss.get("price_model") or "").strip().lower()
    where = (ss.get("price_provider") or "").strip() or ANY_PROVIDER
    currency = ss.get("price_currency")
    input_price, output_price = ss.get("price_input") or 0.0, ss.get("price_output") or 0.0
    if not name:
        ss["price_error"] = t("settings.model_required")
        return
    if not currency:
        ss["price_error"] = t("settings.currency_required")
        return
    try:
        now.store.set_price(provider=where, model=name, input_per_1m=input_price,
                            output_per_1m=output_price, currency=currency,
                            actor=current_actor(now))
    except ValueError as exc:  # a rule of the store's this form does not know yet
        ss["price_error"] = t("settings.price_invalid", error=exc)
        return
    ss[FLASH] = (t("settings.price_saved_short", model=name), t(
        "settings.price_saved", model=name, provider=provider_label(where),
        input=f"{input_price:.4f}", output=f"{output_price:.4f}", currency=currency))


@guarded
def remove_price(edit: dict) -> None:
    now = page_context()
    now.store.delete_price(provider=edit["provider"], model=edit["model"],
                           actor=current_actor(now))
    removed = t("settings.price_removed", model=edit["model"],
                provider=provider_label(edit["provider"]))
    ss[FLASH] = (t("settings.price_removed_short", model=edit["model"]), removed)


with st.form("price"):
    st.markdown(f"**{t('settings.edit_price')}**")
    cols = st.columns([2, 1])  # two rows: number inputs need room for their figures
    cols[0].text_input(t("history.col_model"), key="price_model", placeholder="deepseek-chat")
    cols[1].text_input(t("app.sidebar_provider"), value=ANY_PROVIDER, key="price_provider",
                       help=t("settings.provider_help"))
    cols = st.columns(3)
    cols[0].number_input(t("settings.input"), min_value=0.0, step=0.1, format="%.4f",
                         key="price_input")
    cols[1].number_input(t("settings.output"), min_value=0.0, step=0.1, format="%.4f",
                         key="price_output")
    cols[2].selectbox(t("usage.currency"), currencies, key="price_currency",
                      format_func=currency_label, placeholder=choose)
    st.form_submit_button(t("settings.save_price"), type="primary", on_click=save_price,
                          key="price_save")
    if ss.get("price_error"):
        st.error(ss.pop("price_error"))

edits = store.price_edits()
if edits:
    labels = {f"{provider_label(e['provider'])} / {e['model']}": e for e in edits}
    remove_cols = st.columns([3, 1], vertical_alignment="bottom")
    chosen = remove_cols[0].selectbox(t("settings.remove_price"), list(labels),
                                      key="price_remove", placeholder=choose)
    remove_cols[1].button(t("settings.remove"), key="price_remove_button",
                          disabled=chosen is None, on_click=remove_price,
                          args=(labels.get(chosen),))

# -- budgets -------------------------------------------------------------------------
st.subheader(t("settings.budgets"))
st.caption(t("settings.budgets_help"))
budget_currencies = sorted(set(BUDGET_CURRENCIES) | set(budgets)
                           | {p.currency for p in table.rows() if p.currency != LOCAL})


@guarded
def save_budgets(currencies_shown: list[str]) -> None:
    now = page_context()
    who = current_actor(now)
    for c in currencies_shown:
        now.store.set_budget(c, ss.get(f"budget_{c}") or None,
                             hard_cap=bool(ss.get(f"budget_cap_{c}")), actor=who)
    ss["budgets_saved"] = True


with st.form("budgets"):
    budget_cols = st.columns(3)
    hard_caps = store.hard_caps()
    for n, c in enumerate(budget_currencies):
        with budget_cols[n % 3]:
            st.number_input(t("settings.budget_for", currency=currency_label(c)), min_value=0.0,
                            step=10.0, value=float(budgets.get(c, 0.0)), key=f"budget_{c}")
            # a hard cap refuses past the budget (writer/storage/usage.py require_within_budget)
            st.checkbox(t("settings.budget_hard_cap"), value=c in hard_caps,
                        key=f"budget_cap_{c}",
                        help=t("settings.budget_hard_cap_help", currency=c))
    st.form_submit_button(t("settings.save_budgets"), on_click=save_budgets,
                          args=(budget_currencies,), key="budgets_save")
    if ss.pop("budgets_saved", None):
        st.success(t("settings.budgets_saved"))

# -- budgets per person --------------------------------------------------------------
st.subheader(t("auth.person_budgets"))
st.caption(t("auth.person_budgets_help"))
people = accounts.list_users(store)
person_budgets = store.person_budgets()
if person_budgets:
    st.dataframe([{t("auth.person"): author_label(b["author"], t),
                   t("usage.currency"): currency_label(b["currency"]),
                   t("auth.col_budget"): b["monthly_amount"],
                   t("auth.col_hard_cap"): "✓" if b["hard_cap"] else ""}
                  for b in person_budgets], hide_index=True, width="stretch")
names = sorted({p["name"] for p in people} | {a for a in distinct(store, "author")
                                               if a != LEGACY_AUTHOR}, key=str.casefold)


@guarded
def save_person_budget() -> None:
    now = page_context()
    name = (ss.get("person_name") or "").strip()
    currency = ss.get("person_currency")
    if not name or not currency:
        ss["person_message"] = ("error", t("auth.person_required"))
        return
    amount = ss.get("person_amount") or None
    now.store.set_person_budget(name, currency, amount, bool(ss.get("person_cap")),
                                actor=current_actor(now))
    ss["person_message"] = ("success", t("auth.person_saved" if amount else "auth.person_removed",
                                         name=name, currency=currency))


with st.form("person_budget"):
    cols = st.columns([2, 1, 1, 1], vertical_alignment="bottom")
    cols[0].selectbox(t("auth.person"), names, key="person_name", index=None,
                      accept_new_options=True, placeholder=choose)
    cols[1].selectbox(t("usage.currency"), budget_currencies, key="person_currency",
                      format_func=currency_label, placeholder=choose)
    cols[2].number_input(t("auth.person_amount"), min_value=0.0, step=10.0, key="person_amount",
                         help=t("settings.budgets_help"))
    cols[3].checkbox(t("settings.budget_hard_cap"), key="person_cap")
    st.form_submit_button(t("auth.person_save"), on_click=save_person_budget,
                          key="person_budget_save")
    message = ss.pop("person_message", None)
    if message:
        getattr(st, message[0])(plain(message[1]) if message[0] == "success" else message[1])

# -- people ------------------------------------------------------------------------
st.subheader(t("auth.people_title"))
if people:
    st.dataframe([{t("auth.col_name"): p["name"], t("auth.col_role"): t(f"auth.role_{p['role']}"),
                   t("auth.col_created"): timezones.local(p["created_at"], ctx.tz)}
                  for p in people], hide_index=True, width="stretch")
else:
    st.caption(t("auth.people_none", mode=ctx.settings.auth))
st.caption(t("auth.people_help"))

# -- about ---------------------------------------------------------------------------
st.divider()
st.subheader(t("settings.about"))
settings = ctx.settings
try:
    in_use_provider = choose_provider(settings)
    provider_line = f"{in_use_provider.title} · `{in_use_provider.model or '?'}`"
    if in_use_provider.base_url:  # the address without its user, password or token
        provider_line += f" · `{logs.redact(in_use_provider.base_url)}`"
    if in_use_provider.kind == "local":
        provider_line += f" — {t('settings.local_model')}"
except ProviderChoiceError as exc:  # app.py has said so already; here, once more, briefly
    provider_line = str(exc)
try:
    browser_zone = st.context.timezone
except Exception:  # no browser (AppTest, a bare script run)
    browser_zone = None
tz = ctx.tz
zone_source = ("tz_browser" if timezones.zone(browser_zone) is not None
               else "tz_setting" if timezones.zone(settings.timezone) is not None
               else "tz_default")
st.markdown("  \n".join(t("settings.about_item", label=label, value=value) for label, value in [
    (t("settings.about_db"), f"`{settings.database_shown}`"),
    (t("settings.about_provider"), provider_line),
    (t("settings.about_timezone"), t(
        "settings.tz_line", zone=getattr(tz, "key", str(tz)), source=t(f"settings.{zone_source}"),
        now=dt.datetime.now(tz).strftime("%Y-%m-%d %H:%M"))),
    (t("settings.about_language"), t("settings.language_line")),
    ("API Key", t("settings.key_set" if settings.has_api_key else "settings.key_missing")),
]))
if settings.has_api_key:
    st.caption(t("settings.key_change"))
else:
    st.info(t("settings.key_how"))
st.code(t("settings.env_example", path=PROJECT_ROOT / ".env"), language="bash")
