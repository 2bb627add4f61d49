"""Revisions and versions of an article, on the Write page and in History: the
instruction box (presets, free text, whole article or one section), the list of
versions with their instruction, words and cost, two versions side by side with the
differences marked, and "make current"."""
from __future__ import annotations

import re

import streamlit as st

from views.common import current_actor, format_cost, guarded, page_context, registry
from writer.io import timezones
from writer.io.diff import side_by_side
from writer.io.i18n import Translator
from writer.io.markup import images_as_links, plain
from writer.providers.choice import available_providers
from writer.runs import titles as headlines
from writer.runs.job import JobError
from writer.runs.revisions import PRESETS, RevisionJob, sections
from writer.runs.revisions import _kit as revision_kit
from writer.storage import versions

DIFF_CSS = """<style>
.writer-diff{font-size:.95rem;line-height:1.7;border:1px solid rgba(49,51,63,.15);
border-radius:.5rem;padding:.75rem 1rem;max-height:28rem;overflow:auto;white-space:normal}
.writer-diff del{background:#ffe3e3;color:#a61e1e;text-decoration:line-through}
.writer-diff ins{background:#d3f9d8;color:#1b6b2a;text-decoration:none}
</style>"""


@guarded
def start_revision(article_id: int, t: Translator) -> None:
    """The "new version" button: hand a RevisionJob to the registry; this tab shows it."""
    ss, now = st.session_state, page_context()  # a callback runs in the next run's thread
    key = f"revise-{article_id}"
    providers = {p.name: p for p in available_providers(now.settings)}
    job = RevisionJob(article_id, now.settings, instruction=ss.get(f"{key}-text"),
                      preset=ss.get(f"{key}-preset"), section=ss.get(f"{key}-scope") or None,
                      provider=providers.get(ss.get("provider")),
                      length_control=ss.get("length_control", True), actor=current_actor(now))
    handle = registry().submit(job)
    ss[f"{key}-text"] = ""
    ss["article_id"] = handle.article_id  # the Write page shows it streaming
    ss["revision_started"] = True  # History moves to the Write page to show it


def revise_panel(row: dict, t: Translator, *, key_prefix: str = "") -> None:
    """Instruction box for a finished article."""
    article_id = row["id"]
    key = f"revise-{article_id}"
    # A form: the preset, the instruction and the scope go to the server together with
    # the click (no run per widget that a quick click could overtake).
    with st.form(f"{key_prefix}{key}-form", border=True, enter_to_submit=False):
        st.markdown(f"**{t('revise.title')}**")
        st.pills(t("revise.presets"), PRESETS, key=f"{key}-preset",
                 format_func=lambda p: t(f"revise.preset_{p}"))
        st.text_input(t("revise.instruction"), key=f"{key}-text",
                      placeholder=t("revise.instruction_placeholder"))
        parts = sections(row["content"] or "")
        st.selectbox(t("revise.scope"), [0, *(p.number for p in parts)], key=f"{key}-scope",
                     placeholder=t("app.choose"),
                     format_func=lambda n: t("revise.whole") if n == 0
                     else f"{n}. {parts[n - 1].title}")
        st.form_submit_button(t("revise.run"), key=f"{key_prefix}{key}-run",
                              icon=":material/auto_fix_high:", on_click=start_revision,
                              args=(article_id, t))


def instruction_text(instruction: str | None, t: Translator) -> str:
    """A stored instruction for people: "[cta] 提到早鸟价" → "加入行动号召 · 提到早鸟价"."""
    if not instruction:
        return "–"
    match = re.match(r"\[(\w+)\]\s*(.*)", instruction, re.S)
    if match and match.group(1) in PRESETS:
        label = t(f"revise.preset_{match.group(1)}")
        return f"{label} · {match.group(2)}" if match.group(2) else label
    return instruction


@guarded
def make_current(article_id: int, number: int) -> None:
    now = page_context()
    versions.choose(now.store, article_id, number, _kit(now.store, article_id),
                    actor=current_actor(now))


def versions_panel(row: dict, t: Translator, store, tz, *, mine: bool = True) -> None:
    """The article's versions, a side-by-side comparison and "make current" (`mine`:
    the reader may change the article, its author or an admin)."""
    article_id = row["id"]
    listed = versions.listing(store, article_id)
    if len(listed) < 2:
        return
    current = row.get("current_version")
    written = [v for v in listed if v["kind"] == "variant" and v["content"].strip()]
    if len(written) > 1:  # variants of one brief, side by side: pick the article
        st.markdown(f"**{t('versions.variants_title')}**")
        for column, v in zip(st.columns(len(written)), written):
            with column.container(border=True):
                st.caption(t("versions.option", number=v["number"],
                             kind=t("versions.kind_variant")))
                st.markdown(images_as_links(v["content"]))
                if v["number"] == current:
                    st.caption(t("versions.is_current"))
                elif mine:
                    st.button(t("versions.use_variant"), key=f"versions-{article_id}-use-"
                              f"{v['number']}", icon=":material/check_circle:",
                              on_click=make_current, args=(article_id, v["number"]))
    st.markdown(f"**{t('versions.title', count=len(listed))}**")
    st.dataframe([{
        t("versions.col_number"): f"{v['number']}{' ✓' if v['number'] == current else ''}",
        t("versions.col_kind"): t(f"versions.kind_{v['kind']}")
        + (f" §{v['section']}" if v["section"] else ""),
        t("versions.col_instruction"): instruction_text(v["instruction"], t),
        t("versions.col_status"): t(f"statuses.{v['status']}"),
        t("versions.col_words"): v["words"] or 0,
        t("versions.col_cost"): format_cost(v["cost"], v["currency"], t),
        t("versions.col_created"): timezones.local(v["created_at"], tz),
    } for v in listed], hide_index=True, width="stretch")
    total_words = sum(v["words"] or 0 for v in listed)
    st.caption(t("versions.total_cost", cost=format_cost(row.get("cost"), row.get("currency"), t),
                 count=len(listed), words=total_words))
    numbers = [v["number"] for v in listed]
    by_number = {v["number"]: v for v in listed}
    label = lambda n: t("versions.option", number=n, kind=t(f"versions.kind_{by_number[n]['kind']}"))  # noqa: E731
    left, right = st.columns(2)
    old = left.selectbox(t("versions.compare_old"), numbers, key=f"versions-{article_id}-old",
                         index=max(0, numbers.index(current) - 1) if current in numbers else 0,
                         format_func=label, placeholder=t("app.choose"))
    new = right.selectbox(t("versions.compare_new"), numbers, key=f"versions-{article_id}-new",
                          index=numbers.index(current) if current in numbers else len(numbers) - 1,
                          format_func=label, placeholder=t("app.choose"))
    a, b = side_by_side(by_number[old]["content"], by_number[new]["content"])
    st.html(DIFF_CSS)
    left.html(f"<div class='writer-diff'>{a}</div>")
    right.html(f"<div class='writer-diff'>{b}</div>")
    for column, number in ((left, old), (right, new)):
        if mine and number != current and by_number[number]["content"].strip():
            column.button(t("versions.make_current", number=number),
                          key=f"versions-{article_id}-choose-{number}-{column is left}",
                          icon=":material/restore:", on_click=make_current,
                          args=(article_id, number))


def _kit(store, article_id: int):
    row = store.get(article_id) or {}
    return revision_kit(store, row["brand"]) if row.get("brand") else None


def headlines_panel(row: dict, t: Translator) -> None:
    """Five title suggestions for a blog article (one request); using one is a version."""
    article_id = row["id"]
    key = f"headlines-{article_id}"
    ss = st.session_state
    with st.container(border=True):
        st.markdown(f"**{t('headlines.title')}**")
        if st.button(t("headlines.run"), key=f"{key}-run", icon=":material/title:"):
            ss.pop(key, None)
            with st.spinner(t("headlines.working")):
                suggest_titles(article_id, key)
        titles = ss.get(key)
        if titles:
            chosen = st.radio(t("headlines.pick"), titles, key=f"{key}-pick",
                              format_func=plain)  # a model's words: shown as text
            st.button(t("headlines.use"), key=f"{key}-use", icon=":material/check:",
                      on_click=use_title, args=(article_id, chosen))


@guarded
def suggest_titles(article_id: int, key: str) -> None:
    """Five titles (one request), kept in the session until one is used."""
    now = page_context()
    providers = {p.name: p for p in available_providers(now.settings)}
    try:
        st.session_state[key] = headlines.suggest(article_id, now.settings,
                                                  providers.get(st.session_state.get("provider")),
                                                  actor=current_actor(now))
    except JobError as exc:  # the request failed: "no titles this time", not "did not start"
        raise JobError(str(exc), key="user_errors.titles") from None


@guarded
def use_title(article_id: int, title: str) -> None:
    now = page_context()
    headlines.use_title(now.store, article_id, title, actor=current_actor(now))
    st.session_state.pop(f"headlines-{article_id}", None)
