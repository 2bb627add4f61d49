"""Entry point: `streamlit run app.py`. Navigation and the shared sidebar only."""
import sys

import streamlit as st

from views.auth import gate, sidebar_account
from views.common import guarded, page_context, reader_scope, remember_language, running_panel
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

try:  # a broken setting: say which, once
    ctx = page_context()
except UserError as exc:  # SettingsError…
    st.error(f"Settings problem / 配置有误: {exc}")
    st.stop()
t = ctx.t

# (script, locale key, icon); writers have no Settings page (prices, budgets, people).
PAGES = [("views/write.py", "app.nav_write", ":material/edit_note:"),
         ("views/batch.py", "app.nav_batch", ":material/table_view:"),
         ("views/brands.py", "app.nav_brands", ":material/verified:"),
         ("views/history.py", "app.nav_history", ":material/history:"),
         ("views/usage.py", "app.nav_usage", ":material/payments:"),
         ("views/providers.py", "app.nav_providers", ":material/speed:"),
         ("views/settings.py", "app.nav_settings", ":material/settings:")]
ADMIN_PAGES = {"views/settings.py"}

# Who is here, before anything else is drawn: signed out, the sign-in page alone (no
# sidebar, no article, topic or running job); bound beyond loopback with no sign-in
# configured, a page that says what to configure (views/auth.py).
actor = gate(ctx, [path for path, _, _ in PAGES])

try:  # a broken providers file, prompt template or price file: say which, once
    provider = choose_provider(ctx.settings)
    warm_client(provider)  # once per process, in the background
    default_prompts()
    price_table(ctx.settings.prices_file)
except UserError as exc:  # ProviderChoiceError, PromptError, PriceFileError…
    st.error(f"Settings problem / 配置有误: {exc}")
    st.stop()

nav = st.navigation([st.Page(path, title=t(key), icon=icon, default=path == PAGES[0][0])
                     for path, key, icon in PAGES if actor.is_admin or path not in ADMIN_PAGES])

with st.sidebar:
    st.caption(t("app.title"))
    sidebar_account(ctx, actor)  # who is signed in, as what; Sign out
    # The providers file's words stay text (a model name in a code span has no backticks).
    st.markdown(f"**{t('app.sidebar_provider')}:** "
                f"{t('write.provider_local') if provider.kind == 'local' else plain(provider.title)}"
                + ("" if provider.kind == "local" else f"  \n**{t('app.sidebar_model')}:** "
                   f"`{(provider.model or '?').replace('`', '')}`"))
    st.selectbox("UI / 界面", UI_LANGUAGES, key="ui_language", placeholder="中文 / English",
                 index=UI_LANGUAGES.index(ctx.t.language),
                 format_func=lambda code: {"zh": "中文", "en": "English"}[code])
    remember_language(st.session_state["ui_language"])
    # Articles being written, from any page: progress, open, Stop (what this person may see).
    running_panel(t, actor, reader_scope(actor, ctx.settings))

guarded(nav.run)()  # a refusal anywhere on the page: one message, never a traceback
