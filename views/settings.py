"""Settings page: prices (edited prices are stored in the database over the shipped
defaults) and monthly budgets per currency."""
import streamlit as st

from views.common import page_context
from writer.costs import ANY_PROVIDER, price_table

CURRENCIES = ("USD", "CNY")

ctx = page_context()
t = ctx.t
store = ctx.store
st.title(t("settings.title"))

st.subheader(t("settings.prices"))
st.caption(t("settings.prices_help"))
table = price_table(ctx.settings.prices_file, store.price_edits())
st.dataframe([{
    t("history.col_model"): p.model, t("app.sidebar_provider"): p.provider,
    t("settings.input"): p.input_per_1m, t("settings.output"): p.output_per_1m,
    t("usage.currency"): p.currency, t("settings.source"): t(f"settings.source_{p.source}"),
} for p in table.rows()], hide_index=True, width="stretch")

with st.form("price"):
    st.markdown(f"**{t('settings.edit_price')}**")
    cols = st.columns(5)
    model = cols[0].text_input(t("history.col_model"), key="price_model")
    provider = cols[1].text_input(t("app.sidebar_provider"), value=ANY_PROVIDER,
                                  key="price_provider", help=t("settings.provider_help"))
    input_price = cols[2].number_input(t("settings.input"), min_value=0.0, step=0.1,
                                       format="%.4f", key="price_input")
    output_price = cols[3].number_input(t("settings.output"), min_value=0.0, step=0.1,
                                        format="%.4f", key="price_output")
    currency = cols[4].text_input(t("usage.currency"), value="USD", key="price_currency")
    if st.form_submit_button(t("settings.save_price")):
        try:
            store.set_price(provider=provider, model=model, input_per_1m=input_price,
                            output_per_1m=output_price, currency=currency.upper())
        except ValueError as exc:
            st.error(str(exc))
        else:
            st.success(t("settings.price_saved", model=model.strip().lower()))
            st.rerun()

edits = store.price_edits()
if edits:
    labels = {f"{e['provider']}/{e['model']}": e for e in edits}
    chosen = st.selectbox(t("settings.remove_price"), list(labels), key="price_remove")
    if st.button(t("settings.remove"), key="price_remove_button"):
        store.delete_price(provider=labels[chosen]["provider"], model=labels[chosen]["model"])
        st.rerun()

st.subheader(t("settings.budgets"))
st.caption(t("settings.budgets_help"))
budgets = store.budgets()
with st.form("budgets"):
    currencies = sorted(set(CURRENCIES) | set(budgets) | {p.currency for p in table.rows()
                                                          if p.currency != "local"})
    amounts = {c: st.number_input(t("settings.budget_for", currency=c), min_value=0.0, step=10.0,
                                  value=float(budgets.get(c, 0.0)), key=f"budget_{c}")
               for c in currencies}
    if st.form_submit_button(t("settings.save_budgets")):
        for c, amount in amounts.items():
            store.set_budget(c, amount or None)
        st.success(t("settings.budgets_saved"))
