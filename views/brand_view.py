"""Brand kit pieces other pages reuse: the kit picker for a form (`pick_brand`), the
check result panel for an article (`show_checks`) and a BrandError in the UI language
(`error_text`). No SQL or check logic here: that lives in writer/brands.py."""
from __future__ import annotations

import json

import streamlit as st

from writer.brands import BrandError, BrandKit
from writer.io.i18n import Translator
from writer.io.markup import plain
from writer.storage import brands as brand_store
from writer.storage.store import Store

MAX_SHOWN = 5  # occurrences of one banned word shown with their context
CONTEXT = 30  # characters either side of an occurrence


def error_text(exc: BrandError, t: Translator) -> str:
    """The error in the UI language (locale `brands.error_<code>`), else its message;
    a kit's name or a file's words in it stay text (it is shown as Markdown)."""
    key = f"brands.error_{exc.code}"
    if not exc.code or not t.has(key):
        return plain(exc)
    values = {k: plain(v) if isinstance(v, str) else v for k, v in exc.values.items()}
    if exc.field:
        values["field"] = t(f"brands.label_{exc.field}")
    try:
        return t(key, **values)
    except (KeyError, IndexError):  # a placeholder the error does not fill
        return plain(exc)


def pick_brand(store: Store, t: Translator, key: str) -> BrandKit | None:
    """A "Brand kit: None / <names>" box for a form; the chosen kit (None for none).
    The session keeps the name under `key`; a kit deleted since falls back to None."""
    names = brand_store.names(store)
    if st.session_state.get(key) not in ("", *names):
        st.session_state[key] = ""
    name = st.selectbox(t("brands.pick"), ["", *names], key=key, placeholder=t("app.choose"),
                        format_func=lambda n: n or t("brands.none"), help=t("brands.pick_help"))
    return brand_store.get(store, name) if name else None


def parse_checks(row: dict) -> dict | None:
    """The row's `checks` (CheckResult.as_dict()), or None when it has none."""
    value = row.get("checks")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


_MARKDOWN = {ord(ch): f"&#{ord(ch)};" for ch in "\\`*_{}[]()#+-.!|~:$<>&\"'"}


def _text(value: str) -> str:
    """`value` as literal text inside st.markdown: HTML-escaped, and every character
    Markdown (or Streamlit's :color[...] and $math$) would act on as an entity."""
    return " ".join(str(value).split("\n")).translate(_MARKDOWN)


def excerpt_html(text: str, start: int, end: int, width: int = CONTEXT) -> str:
    """HTML: the text around [start, end) on one line, that part in <mark>."""
    before = text[max(0, start - width):start]
    after = text[end:end + width]
    prefix = "…" if start - width > 0 else ""
    suffix = "…" if end + width < len(text) else ""
    return (prefix + _text(before) + "<mark>" + _text(text[start:end]) + "</mark>"
            + _text(after) + suffix)


def _located(text: str, hit: dict) -> tuple[int, int] | None:
    """Where the hit is in `text`: its stored offsets when they still point at the
    term, else nowhere (the text changed since it was checked)."""
    start, end = hit.get("start"), hit.get("end")
    if isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text) \
            and text[start:end].casefold() == str(hit.get("term", "")).casefold():
        return start, end
    return None


def show_checks(row: dict, t: Translator, key: str = "brand_checks") -> None:
    """The article's check: banned words highlighted where they are, required terms
    and keywords missing; a green line when it passed. Nothing when the row has no
    check, or passed a check with nothing to check (no kit, no keywords). `key`: the
    panel's container key (one panel per key on a page)."""
    found = parse_checks(row)
    if found is None:
        return
    kit = row.get("brand") or ""
    if found.get("passed"):
        if kit:
            st.success(t("brands.check_passed", name=plain(kit)), icon=":material/verified:")
        elif row.get("keywords"):
            st.success(t("brands.check_passed_keywords"), icon=":material/check_circle:")
        return
    text = row.get("content") or ""
    lines = []
    by_term: dict[str, list[dict]] = {}
    for hit in found.get("banned_found") or []:
        by_term.setdefault(str(hit.get("term", "")), []).append(hit)
    for term, hits in by_term.items():
        lines.append("<strong>" + _text(t("brands.check_banned", term=term, count=len(hits)))
                     + "</strong>")
        shown = [where for where in (_located(text, h) for h in hits) if where][:MAX_SHOWN]
        for start, end in shown:
            lines.append(f"- <small>{excerpt_html(text, start, end)}</small>")
        if shown and len(hits) > len(shown):
            lines.append(f"- <small>{_text(t('brands.check_more', count=len(hits) - len(shown)))}"
                         "</small>")
    sep = "、" if t.language == "zh" else ", "
    missing = found.get("required_missing") or []
    if missing:
        lines.append(_text(t("brands.check_required", terms=sep.join(missing))))
    keywords = found.get("keywords_missing") or []
    if keywords:
        lines.append(_text(t("brands.check_keywords", terms=sep.join(keywords))))
    title = t("brands.check_failed_brand", name=plain(kit)) if kit else t("brands.check_failed")
    with st.container(border=True, key=key):
        st.warning(title, icon=":material/report:")
        st.markdown("\n\n".join(_join_lists(lines)), unsafe_allow_html=True)


def _join_lists(lines: list[str]) -> list[str]:
    """A banned word's line with its list of excerpts as one block; others apart."""
    blocks: list[str] = []
    for line in lines:
        if line.startswith("- ") and blocks:
            blocks[-1] += "\n" + line  # the list under its banned word
        else:
            blocks.append(line)
    return blocks
