"""Brand kits page: what a kit does, the saved kits, a form to create or edit one,
delete with confirmation, import a TOML file and export one kit (or all) as TOML.
Storage and TOML live in writer/brands.py."""
from __future__ import annotations

import hashlib

import pandas as pd
import streamlit as st

from views.brand_view import error_text
from views.common import author_label, current_actor, guarded, page_context
from writer import brands
from writer.brands import BrandError, BrandKit, split_items
from writer.io.export import slugify
from writer.io.markup import plain
from writer.storage import brands as brand_store

ctx = page_context()
t = ctx.t
store = ctx.store
ss = st.session_state
NEW = 0  # the "new kit" choice (kit ids start at 1)
FORM_KEYS = ("bk_name", "bk_voice", "bk_audience", "bk_do", "bk_dont", "bk_banned",
             "bk_required", "bk_facts", "bk_sample1", "bk_sample2")

st.title(t("brands.title"))
st.caption(t("brands.intro"))


def load_form(kit: BrandKit | None) -> None:
    """Put a kit (or nothing, for a new one) into the form's fields."""
    kit = kit or BrandKit(name="-")
    samples = list(kit.samples) + ["", ""]
    values = {"bk_name": kit.name if kit.id else "", "bk_voice": kit.voice,
              "bk_audience": kit.audience, "bk_do": "\n".join(kit.do),
              "bk_dont": "\n".join(kit.dont), "bk_banned": "\n".join(kit.banned_words),
              "bk_required": "\n".join(kit.required_terms), "bk_facts": kit.facts,
              "bk_sample1": samples[0], "bk_sample2": samples[1]}
    ss.update(values)


def kit_from_form(kit_id: int | None) -> BrandKit:
    return BrandKit(name=ss.get("bk_name", ""), voice=ss.get("bk_voice", ""),
                    audience=ss.get("bk_audience", ""), do=ss.get("bk_do", ""),
                    dont=ss.get("bk_dont", ""), banned_words=split_items(ss.get("bk_banned", "")),
                    required_terms=split_items(ss.get("bk_required", "")),
                    facts=ss.get("bk_facts", ""),
                    samples=[ss.get("bk_sample1", ""), ss.get("bk_sample2", "")], id=kit_id)


@guarded
def on_save() -> None:
    """Save button (a callback: it may select the kit it saved)."""
    now = page_context()
    chosen = ss.get("brands_pick") or NEW
    try:
        kit = kit_from_form(chosen or None)
        kit_id = brand_store.save(now.store, kit, replace=False,  # a new kit never replaces one
                                  actor=current_actor(now))
    except BrandError as exc:  # shown in the form, next to what to fix
        ss["brands_form_error"] = error_text(exc, t)
        return
    ss.pop("brands_form_error", None)
    ss["brands_message"] = ("success", t("brands.saved_kit", name=plain(kit.name)))
    ss["brands_pick"] = ss["brands_loaded"] = kit_id
    load_form(brand_store.get(now.store, kit_id))  # as saved: lists cleaned, one per line


@guarded
def on_delete(kit: BrandKit, confirmed: bool) -> None:
    ss.pop("brands_confirm_delete", None)
    if not confirmed:
        return
    now = page_context()
    brand_store.delete(now.store, kit.name, actor=current_actor(now))
    ss["brands_message"] = ("success", t("brands.deleted", name=plain(kit.name)))
    ss["brands_pick"] = ss["brands_loaded"] = NEW
    load_form(None)


@guarded
def on_import(kits: list[BrandKit], replace: bool = False) -> None:
    """Import: a saved kit of the same name is replaced only when `replace` (the page
    asked first); one saved meanwhile is refused with its name."""
    now = page_context()
    existing = set(brand_store.names(now.store))
    who = current_actor(now)
    try:
        for kit in kits:
            brand_store.save(now.store, kit, replace=replace, actor=who)
    except BrandError as exc:  # in the UI language, from its code
        ss["brands_message"] = ("error", error_text(exc, t))
        return
    new = sum(kit.name not in existing for kit in kits)
    ss["brands_message"] = ("success", t("brands.imported", new=new, updated=len(kits) - new,
                                         names=plain(", ".join(kit.name for kit in kits))))
    ss["brands_upload_key"] = ss.get("brands_upload_key", 0) + 1  # clear the file box
    if len(kits) == 1:  # open what was imported
        ss["brands_pick"] = ss["brands_loaded"] = brand_store.get(now.store, kits[0].name).id
        load_form(brand_store.get(now.store, kits[0].name))


kits = brand_store.listing(store)
by_id = {kit.id: kit for kit in kits}
actor = current_actor(ctx)
kit_authors = brand_store.authors(store)  # anyone writes with any kit; its author changes it

message = ss.pop("brands_message", None)
if message:
    getattr(st, message[0])(message[1])

# -- the saved kits ----------------------------------------------------------------
st.subheader(t("brands.saved", count=len(kits)))
if kits:
    st.dataframe(pd.DataFrame([{
        t("brands.col_name"): kit.name,
        t("brands.col_voice"): kit.voice.replace("\n", " ")[:80],
        t("brands.col_banned"): len(kit.banned_words),
        t("brands.col_required"): len(kit.required_terms),
        t("brands.col_rules"): len(kit.do) + len(kit.dont),
        t("brands.col_samples"): len(kit.samples),
        t("auth.col_author"): author_label(kit_authors.get(kit.name), t),
    } for kit in kits]), hide_index=True, width="stretch",
        height=min(300, 38 + 35 * len(kits)))
else:
    st.info(t("brands.empty"), icon=":material/info:")

# -- create / edit -----------------------------------------------------------------
if ss.get("brands_pick") not in (NEW, *by_id):
    ss["brands_pick"] = NEW  # deleted elsewhere (another tab, the CLI)
ss.setdefault("brands_pick", NEW)
pick_col, export_col = st.columns([3, 2], vertical_alignment="bottom")
chosen = pick_col.selectbox(
    t("brands.edit"), [NEW, *by_id], key="brands_pick", placeholder=t("app.choose"),
    format_func=lambda kit_id: by_id[kit_id].name if kit_id in by_id else t("brands.new_kit"))
kit = by_id.get(chosen)
if ss.get("brands_loaded", -1) != chosen:  # another kit chosen: fill the form with it
    load_form(kit)
    ss["brands_loaded"] = chosen
    ss.pop("brands_form_error", None)
    ss.pop("brands_confirm_delete", None)
if kit is not None:
    export_col.download_button(
        t("brands.export"), data=brands.to_toml(kit).encode("utf-8"),
        file_name=f"{slugify(kit.name)}.toml", mime="application/toml",
        icon=":material/download:", on_click="ignore", key="brands_export")

may_edit = kit is None or actor.may_change(kit_authors.get(kit.name))
with st.form("brand_form", border=True):
    st.markdown(f"**{t('brands.form_edit', name=plain(kit.name)) if kit else t('brands.form_new')}**")
    left, right = st.columns(2, gap="large")
    with left:
        st.text_input(t("brands.label_name"), key="bk_name", max_chars=brands.MAX_NAME_CHARS,
                      placeholder=t("brands.placeholder_name"))
        st.text_area(t("brands.label_voice"), key="bk_voice", height=110,
                     placeholder=t("brands.placeholder_voice"))
        st.text_input(t("brands.label_audience"), key="bk_audience",
                      placeholder=t("brands.placeholder_audience"))
        st.text_area(t("brands.label_do"), key="bk_do", height=110,
                     placeholder=t("brands.placeholder_do"))
        st.text_area(t("brands.label_dont"), key="bk_dont", height=110,
                     placeholder=t("brands.placeholder_dont"))
    with right:
        st.text_area(t("brands.label_banned_words"), key="bk_banned", height=110,
                     placeholder=t("brands.placeholder_items"), help=t("brands.help_items"))
        st.text_area(t("brands.label_required_terms"), key="bk_required", height=110,
                     placeholder=t("brands.placeholder_items"), help=t("brands.help_items"))
        st.text_area(t("brands.label_facts"), key="bk_facts", height=110,
                     help=t("brands.help_facts"))
        st.text_area(t("brands.label_sample_1"), key="bk_sample1", height=110,
                     help=t("brands.help_samples"))
        st.text_area(t("brands.label_sample_2"), key="bk_sample2", height=90)
    if ss.get("brands_form_error"):
        st.error(t("brands.invalid", error=ss["brands_form_error"]), icon=":material/error:")
    if not may_edit:  # someone else's kit: read here, changed by its author or an admin
        st.caption(t("auth.by_author", name=plain(author_label(kit_authors.get(kit.name), t))))
    st.form_submit_button(t("brands.save"), type="primary", on_click=on_save,
                          icon=":material/save:", key="brands_save", disabled=not may_edit)

if kit is not None and may_edit:
    if ss.get("brands_confirm_delete") == kit.id:
        st.warning(t("brands.delete_confirm", name=plain(kit.name)), icon=":material/warning:")
        yes, no, _ = st.columns([1, 1, 4])
        yes.button(t("brands.delete_yes"), type="primary", key="brands_delete_yes",
                   on_click=on_delete, args=(kit, True))
        no.button(t("brands.delete_no"), key="brands_delete_no", on_click=on_delete,
                  args=(kit, False))
    else:
        st.button(t("brands.delete"), icon=":material/delete:", key="brands_delete",
                  on_click=lambda: ss.update(brands_confirm_delete=kit.id))

# -- import / export -----------------------------------------------------------------
st.subheader(t("brands.share"))
st.caption(t("brands.share_help"))
upload = st.file_uploader(t("brands.upload"), type=["toml"],
                          key=f"brands_upload_{ss.get('brands_upload_key', 0)}")
if upload is not None:
    data = upload.getvalue()
    try:
        found = brands.from_toml(data)
    except BrandError as exc:
        st.error(t("brands.import_error", file=plain(upload.name), error=error_text(exc, t)),
                 icon=":material/error:")
    else:
        st.info(t("brands.import_preview", file=plain(upload.name), count=len(found),
                  names=plain(", ".join(kit.name for kit in found))), icon=":material/upload_file:")
        digest = hashlib.sha256(data).hexdigest()[:12]
        taken = brand_store.existing(store, found)
        replace = False
        if taken:  # ask before replacing a saved kit
            st.warning(t("brands.import_replaces", names=plain(", ".join(taken))),
                       icon=":material/warning:")
            replace = st.checkbox(t("brands.import_replace_confirm"),
                                  key=f"brands_replace_{digest}")
        st.button(t("brands.import_button"), type="primary", icon=":material/upload:",
                  key=f"brands_import_{digest}", disabled=bool(taken) and not replace,
                  on_click=on_import, args=(found, replace))
if kits:
    st.download_button(t("brands.export_all"), data=brands.to_toml_all(kits).encode("utf-8"),
                       file_name="brand-kits.toml", mime="application/toml",
                       icon=":material/download:", on_click="ignore", key="brands_export_all")
