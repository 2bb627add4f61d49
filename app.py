"""Entry point: `streamlit run app.py`. Navigation and the shared sidebar only."""
import sys

import streamlit as st

from views.common import guarded, page_context, remember_language, running_panel
from writer.errors import UserError
from writer.generation.length import warm_up
from writer.generation.prompts import default_prompts
from writer.io.i18n import UI_LANGUAGES
from writer.io.markup import plain
from writer.providers.choice import choose_provider
from writer.providers.http import warm_client
from writer.storage.prices import price_table

# Articles stream on worker threads; a 1 ms GIL switch interval (default 5 ms) lets the
# script and the server's event loop get the GIL sooner while a fast stream is parsed:
# first words about 15 ms sooner at 2,000 tokens/s (scripts/bench_stream_ui.py).
sys.setswitchinterval(0.001)
st.set_page_config(page_title="AI Writer", page_icon="✍️", layout="wide")
warm_up()  # token budgets are measured once per process, off the first click's path

try:  # a broken setting, providers file, prompt template or price file: say which, once
    ctx = page_context()
    provider = choose_provider(ctx.settings)
    warm_client(provider)  # once per process, in the background
    default_prompts()
    price_table(ctx.settings.prices_file)
except UserError as exc:  # SettingsError, ProviderChoiceError, PromptError, PriceFileError…
    st.error(f"Settings problem / 配置有误: {exc}")
    st.stop()
t = ctx.t

pages = [
    st.Page("views/write.py", title=t("app.nav_write"), icon=":material/edit_note:", default=True),
    st.Page("views/batch.py", title=t("app.nav_batch"), icon=":material/table_view:"),
    st.Page("views/brands.py", title=t("app.nav_brands"), icon=":material/verified:"),
    st.Page("views/history.py", title=t("app.nav_history"), icon=":material/history:"),
    st.Page("views/usage.py", title=t("app.nav_usage"), icon=":material/payments:"),
    st.Page("views/providers.py", title=t("app.nav_providers"), icon=":material/speed:"),
    st.Page("views/settings.py", title=t("app.nav_settings"), icon=":material/settings:"),
]
nav = st.navigation(pages)

with st.sidebar:
    st.caption(t("app.title"))
    # The providers file's words stay text (a model name in a code span has no backticks).
    st.markdown(f"**{t('app.sidebar_provider')}:** "
                f"{t('write.provider_local') if provider.kind == 'local' else plain(provider.title)}"
                + ("" if provider.kind == "local" else f"  \n**{t('app.sidebar_model')}:** "
                   f"`{(provider.model or '?').replace('`', '')}`"))
    st.selectbox("UI / 界面", UI_LANGUAGES, key="ui_language", placeholder="中文 / English",
                 index=UI_LANGUAGES.index(ctx.t.language),
                 format_func=lambda code: {"zh": "中文", "en": "English"}[code])
    remember_language(st.session_state["ui_language"])
    # Articles being written, from any page: progress, open, Stop.
    running_panel(t)

guarded(nav.run)()  # a refusal anywhere on the page: one message, never a traceback
