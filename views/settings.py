"""Settings page: prices (edited prices are stored in the database over the shipped
defaults), monthly budgets per currency (each may be a hard cap), and About: the database, the API key and
how to set it, the provider and model in use, the time zone and the UI language."""
import datetime as dt

import streamlit as st

from views.common import page_context
from writer import logs
from writer.config import PROJECT_ROOT
from writer.io import timezones
from writer.providers.base import ProviderChoiceError
from writer.providers.choice import choose_provider
from writer.storage.prices import ANY_PROVIDER, price_table

CURRENCIES = ("USD", "CNY", "EUR", "GBP", "JPY", "HKD")  # offered for a price, in this order
BUDGET_CURRENCIES = ("USD", "CNY")  # always a budget field; others once a price uses them
LOCAL = "local"  # the bundled model's "currency": free, never chosen or budgeted
FLASH = "settings_flash"  # a confirmation that outlives the rerun after a save

ctx = page_context()
t = ctx.t
store = ctx.store
choose = t("app.choose")  # Streamlit's own placeholder is English
st.title(t("settings.title"))

flash = st.session_state.pop(FLASH, None)  # (toast, message) set before st.rerun()
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

with st.form("price"):
    st.markdown(f"**{t('settings.edit_price')}**")
    cols = st.columns([2, 1])  # two rows: number inputs need room for their figures
    model = cols[0].text_input(t("history.col_model"), key="price_model",
                               placeholder="deepseek-chat")
    provider = cols[1].text_input(t("app.sidebar_provider"), value=ANY_PROVIDER,
                                  key="price_provider", help=t("settings.provider_help"))
    cols = st.columns(3)
    input_price = cols[0].number_input(t("settings.input"), min_value=0.0, step=0.1,
                                       format="%.4f", key="price_input")
    output_price = cols[1].number_input(t("settings.output"), min_value=0.0, step=0.1,
                                        format="%.4f", key="price_output")
    currency = cols[2].selectbox(t("usage.currency"), currencies, key="price_currency",
                                 format_func=currency_label, placeholder=choose)
    if st.form_submit_button(t("settings.save_price"), type="primary"):
        name, where = model.strip().lower(), provider.strip() or ANY_PROVIDER
        if not name:
            st.error(t("settings.model_required"))
        elif not currency:
            st.error(t("settings.currency_required"))
        else:
            try:
                store.set_price(provider=where, model=name, input_per_1m=input_price,
                                output_per_1m=output_price, currency=currency)
            except ValueError as exc:  # a rule of the store's this form does not know yet
                st.error(t("settings.price_invalid", error=exc))
            else:
                st.session_state[FLASH] = (t("settings.price_saved_short", model=name), t(
                    "settings.price_saved", model=name, provider=provider_label(where),
                    input=f"{input_price:.4f}", output=f"{output_price:.4f}", currency=currency))
                st.rerun()

edits = store.price_edits()
if edits:
    labels = {f"{provider_label(e['provider'])} / {e['model']}": e for e in edits}
    remove_cols = st.columns([3, 1], vertical_alignment="bottom")
    chosen = remove_cols[0].selectbox(t("settings.remove_price"), list(labels),
                                      key="price_remove", placeholder=choose)
    if remove_cols[1].button(t("settings.remove"), key="price_remove_button",
                             disabled=chosen is None):
        edit = labels[chosen]
        store.delete_price(provider=edit["provider"], model=edit["model"])
        removed = t("settings.price_removed", model=edit["model"],
                    provider=provider_label(edit["provider"]))
        st.session_state[FLASH] = (t("settings.price_removed_short", model=edit["model"]),
                                   removed)
        st.rerun()

# -- budgets -------------------------------------------------------------------------
st.subheader(t("settings.budgets"))
st.caption(t("settings.budgets_help"))
with st.form("budgets"):
    budget_currencies = sorted(set(BUDGET_CURRENCIES) | set(budgets)
                               | {p.currency for p in table.rows() if p.currency != LOCAL})
    budget_cols = st.columns(3)
    hard_caps = store.hard_caps()
    amounts, caps = {}, {}
    for n, c in enumerate(budget_currencies):
        with budget_cols[n % 3]:
            amounts[c] = st.number_input(
                t("settings.budget_for", currency=currency_label(c)), min_value=0.0, step=10.0,
                value=float(budgets.get(c, 0.0)), key=f"budget_{c}")
            # a hard cap refuses past the budget (writer/storage/usage.py require_within_budget)
            caps[c] = st.checkbox(t("settings.budget_hard_cap"), value=c in hard_caps,
                                  key=f"budget_cap_{c}",
                                  help=t("settings.budget_hard_cap_help", currency=c))
    if st.form_submit_button(t("settings.save_budgets")):
        for c, amount in amounts.items():
            store.set_budget(c, amount or None, hard_cap=caps[c])
        st.success(t("settings.budgets_saved"))

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
    (t("settings.about_db"), f"`{settings.db_path}`"),
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
