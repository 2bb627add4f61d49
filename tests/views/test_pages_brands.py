"""The Brands page (views/brands.py) and the brand helpers other pages use
(views/brand_view.py) through AppTest, on a scratch database, in both languages."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from test_pages import ROOT
from writer import brands
from writer.access import Actor
from writer.brands import BrandKit
from writer.io.i18n import Translator
from writer.storage import brands as brand_store
from writer.storage.store import Store

KITS_TOML = """
[[brands]]
name = "MiniBrew"
voice = "真诚、利落"
banned_words = ["最好"]

[[brands]]
name = "TeaTime 茶"
required_terms = ["TeaTime"]
"""

ADMIN = Actor("tester", "admin")  # the person at the machine (WRITER_AUTH=none)


@pytest.fixture
def store(env) -> Store:
    return Store(env["WRITER_DB"])


def open_page(language: str = "en") -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.session_state["ui_language"] = language
    at.run()
    at.switch_page("views/brands.py").run()
    assert not at.exception, at.exception
    return at


def fill(at: AppTest, **values) -> AppTest:
    for key, value in values.items():
        at.text_input(key=key).input(value) if key in ("bk_name", "bk_audience") \
            else at.text_area(key=key).input(value)
    return at


def save(at: AppTest) -> AppTest:
    at.button(key="brands_save").click().run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest, kind: str) -> list[str]:
    return [el.value for el in getattr(at, kind)]


@pytest.mark.parametrize("language", ["zh", "en"])
def test_create_a_kit_then_edit_it(store, language):
    t = Translator(language)
    at = open_page(language)
    assert at.title[0].value == t("brands.title")
    assert t("brands.empty") in texts(at, "info")
    assert at.selectbox(key="brands_pick").value == 0  # the new kit
    assert at.selectbox(key="brands_pick").placeholder == t("app.choose")
    fill(at, bk_name="MiniBrew 咖啡", bk_voice="真诚、利落", bk_audience="上班族",
         bk_do="多用短句\n先讲好处", bk_dont="不要贬低竞品", bk_banned="最好, 第一，best",
         bk_required="MiniBrew\n每一杯，都新鲜", bk_facts="萃取压力 15 bar",
         bk_sample1="早上七点。", bk_sample2="")
    save(at)
    assert texts(at, "success") == [t("brands.saved_kit", name="MiniBrew 咖啡")]
    (kit,) = brand_store.listing(store)
    assert kit == BrandKit(name="MiniBrew 咖啡", voice="真诚、利落", audience="上班族",
                           do=("多用短句", "先讲好处"), dont=("不要贬低竞品",),
                           banned_words=("最好", "第一", "best"),
                           required_terms=("MiniBrew", "每一杯，都新鲜"),
                           facts="萃取压力 15 bar", samples=("早上七点。",))
    # the saved kit is now the one being edited, its lists one per line
    assert at.selectbox(key="brands_pick").value == kit.id
    assert at.text_area(key="bk_banned").value == "最好\n第一\nbest"
    assert t("brands.form_edit", name="MiniBrew 咖啡") in "\n".join(texts(at, "markdown"))
    assert at.subheader[0].value == t("brands.saved", count=1)
    table = at.dataframe[0].value
    assert table[t("brands.col_name")].tolist() == ["MiniBrew 咖啡"]
    assert table[t("brands.col_banned")].tolist() == [3]
    # edit: the same kit is updated, renamed, not copied
    fill(at, bk_name="MiniBrew", bk_voice="更口语")
    save(at)
    (edited,) = brand_store.listing(store)
    assert edited.id == kit.id and edited.name == "MiniBrew" and edited.voice == "更口语"
    assert edited.banned_words == kit.banned_words
    # a new kit next to it, then back to the first through the box
    at.selectbox(key="brands_pick").set_value(0).run()
    assert at.text_input(key="bk_name").value == "" and at.text_area(key="bk_voice").value == ""
    save(fill(at, bk_name="TeaTime"))
    assert brand_store.names(store) == ["MiniBrew", "TeaTime"]
    at.selectbox(key="brands_pick").set_value(kit.id).run()
    assert at.text_input(key="bk_name").value == "MiniBrew"
    assert at.text_area(key="bk_voice").value == "更口语"


@pytest.mark.parametrize("language", ["zh", "en"])
def test_validation_messages_are_in_the_ui_language(store, language):
    t = Translator(language)
    at = open_page(language)
    save(fill(at, bk_voice="没有名称"))
    assert texts(at, "error") == [t("brands.invalid", error=t("brands.error_name_empty"))]
    assert brand_store.listing(store) == []
    assert at.text_area(key="bk_voice").value == "没有名称"  # what was typed is kept
    save(fill(at, bk_name="k", bk_banned="x" * 201))
    field = t("brands.label_banned_words")
    assert texts(at, "error") == [t("brands.invalid", error=t(
        "brands.error_item_long", field=field, limit=200))]
    save(fill(at, bk_banned="ok"))
    assert texts(at, "error") == [] and brand_store.names(store) == ["k"]
    brand_store.save(store, BrandKit(name="other"), actor=ADMIN)
    save(fill(at, bk_name="other"))  # renaming "k" onto another kit's name
    assert texts(at, "error") == [t("brands.invalid", error=t("brands.error_name_taken",
                                                             name="other"))]
    assert brand_store.names(store) == ["k", "other"]
    if language == "zh":
        assert texts(at, "error")[0] == "无法保存：已经有名为“other”的品牌规范了：请换一个名称。"


@pytest.mark.parametrize("language", ["zh", "en"])
def test_delete_asks_first(store, language):
    t = Translator(language)
    kit_id = brand_store.save(store, BrandKit(name="MiniBrew"), actor=ADMIN)
    brand_store.save(store, BrandKit(name="TeaTime"), actor=ADMIN)
    at = open_page(language)
    at.selectbox(key="brands_pick").set_value(kit_id).run()
    at.button(key="brands_delete").click().run()
    assert texts(at, "warning") == [t("brands.delete_confirm", name="MiniBrew")]
    at.button(key="brands_delete_no").click().run()
    assert texts(at, "warning") == [] and brand_store.names(store) == ["MiniBrew", "TeaTime"]
    at.button(key="brands_delete").click().run()
    at.button(key="brands_delete_yes").click().run()
    assert not at.exception
    assert texts(at, "success") == [t("brands.deleted", name="MiniBrew")]
    assert brand_store.names(store) == ["TeaTime"]
    assert at.selectbox(key="brands_pick").value == 0 and at.text_input(key="bk_name").value == ""
    assert at.selectbox(key="brands_pick").options == [t("brands.new_kit"), "TeaTime"]


def test_a_kit_deleted_elsewhere_falls_back_to_a_new_one(store):
    kit_id = brand_store.save(store, BrandKit(name="MiniBrew"), actor=ADMIN)
    at = open_page()
    at.selectbox(key="brands_pick").set_value(kit_id).run()
    brand_store.delete(store, "MiniBrew", actor=ADMIN)  # the CLI, another tab
    at.run()
    assert not at.exception and at.selectbox(key="brands_pick").value == 0


@pytest.mark.parametrize("language", ["zh", "en"])
def test_export_one_kit_and_all_as_toml(store, downloads, language):
    t = Translator(language)
    kit = BrandKit(name="MiniBrew 咖啡", voice='多行\n"引号"', banned_words=("最好",),
                   samples=("样例",))
    kit_id = brand_store.save(store, kit, actor=ADMIN)
    brand_store.save(store, BrandKit(name="TeaTime"), actor=ADMIN)
    at = open_page(language)
    at.selectbox(key="brands_pick").set_value(kit_id).run()
    labels = [b.label for b in at.get("download_button")]
    assert labels == [t("brands.export"), t("brands.export_all")]
    files = dict(downloads)
    assert brands.from_toml(files["minibrew-咖啡.toml"]) == [kit]
    assert [k.name for k in brands.from_toml(files["brand-kits.toml"])] == ["MiniBrew 咖啡",
                                                                          "TeaTime"]


@pytest.mark.parametrize("language", ["zh", "en"])
def test_import_a_toml_file(store, language):
    t = Translator(language)
    brand_store.save(store, BrandKit(name="MiniBrew", voice="旧的"), actor=ADMIN)
    at = open_page(language)
    at.file_uploader[0].set_value(("kits.toml", KITS_TOML.encode("utf-8"), "application/toml"))
    at.run()
    assert texts(at, "info")[-1] == t("brands.import_preview", file="kits.toml", count=2,
                                      names="MiniBrew, TeaTime 茶")
    assert brand_store.get(store, "MiniBrew").voice == "旧的"  # nothing saved before Import
    # MiniBrew is saved already: the page says so and asks before replacing it
    assert texts(at, "warning") == [t("brands.import_replaces", names="MiniBrew")]
    import_button = next(b for b in at.button if b.label == t("brands.import_button"))
    assert import_button.disabled  # a browser cannot click it
    with pytest.raises(brands.BrandError) as refused:  # nor can a stale click replace it
        brand_store.save(store, BrandKit(name="MiniBrew"), replace=False, actor=ADMIN)
    assert refused.value.code == "name_taken"
    assert brand_store.get(store, "MiniBrew").voice == "旧的"
    confirm = next(c for c in at.checkbox if c.label == t("brands.import_replace_confirm"))
    confirm.check().run()
    import_button = next(b for b in at.button if b.label == t("brands.import_button"))
    assert not import_button.disabled
    import_button.click().run()
    assert not at.exception
    assert texts(at, "success") == [t("brands.imported", new=1, updated=1,
                                      names="MiniBrew, TeaTime 茶")]
    assert brand_store.names(store) == ["MiniBrew", "TeaTime 茶"]
    assert brand_store.get(store, "MiniBrew").voice == "真诚、利落"
    assert brand_store.get(store, "TeaTime 茶").required_terms == ("TeaTime",)
    # a broken file: one message, in the UI language, nothing saved
    at.file_uploader[0].set_value(("bad.toml", b'name = "x"\ntone = "warm"\n',
                                   "application/toml"))
    at.run()
    expected = t("brands.import_error", file="bad.toml", error=t(
        "brands.error_toml_key", kit="x", field_name="tone"))
    assert texts(at, "error") == [expected]
    assert brand_store.names(store) == ["MiniBrew", "TeaTime 茶"]


def test_import_without_a_name_taken_asks_nothing_and_a_new_kit_never_replaces_one(store):
    t = Translator("en")
    at = open_page("en")
    at.file_uploader[0].set_value(("kits.toml", KITS_TOML.encode("utf-8"), "application/toml"))
    at.run()
    assert texts(at, "warning") == []
    assert not any(c.label == t("brands.import_replace_confirm") for c in at.checkbox)
    next(b for b in at.button if b.label == t("brands.import_button")).click().run()
    assert brand_store.names(store) == ["MiniBrew", "TeaTime 茶"]
    # the "new kit" form with a saved kit's name: refused, the saved kit untouched
    at = open_page("en")
    save(fill(at, bk_name="MiniBrew", bk_voice="另一个"))
    assert brand_store.get(store, "MiniBrew").voice == "真诚、利落"
    assert t("brands.invalid", error=t("brands.error_name_taken", name="MiniBrew")) in \
        texts(at, "error")


# -- views/brand_view.py ----------------------------------------------------------------

def _picker_script(language: str):
    import streamlit as st

    from views.brand_view import pick_brand
    from views.common import page_context
    from writer.io.i18n import Translator

    ctx = page_context()
    kit = pick_brand(ctx.store, Translator(language), key="form_brand")
    st.write(f"chosen: {kit.name if kit else '-'}")


@pytest.mark.parametrize("language", ["zh", "en"])
def test_pick_brand_offers_none_and_the_saved_kits(store, language):
    t = Translator(language)
    brand_store.save(store, BrandKit(name="TeaTime", banned_words=("第一",)), actor=ADMIN)
    brand_store.save(store, BrandKit(name="MiniBrew"), actor=ADMIN)
    at = AppTest.from_function(_picker_script, args=(language,), default_timeout=30).run()
    box = at.selectbox(key="form_brand")
    assert box.label == t("brands.pick") and box.placeholder == t("app.choose")
    assert box.options == [t("brands.none"), "MiniBrew", "TeaTime"]
    assert at.markdown[-1].value == "chosen: -"
    box.set_value("TeaTime").run()
    assert at.markdown[-1].value == "chosen: TeaTime"
    brand_store.delete(store, "TeaTime", actor=ADMIN)
    at.run()
    assert not at.exception and at.markdown[-1].value == "chosen: -"


def _checks_script(row: dict, language: str):
    from views.brand_view import show_checks
    from writer.io.i18n import Translator

    show_checks(row, Translator(language))


def _run_checks(row: dict, language: str = "en") -> AppTest:
    at = AppTest.from_function(_checks_script, args=(row, language), default_timeout=30).run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("language", ["zh", "en"])
def test_show_checks_highlights_banned_words_and_lists_what_is_missing(language):
    t = Translator(language)
    content = "开头。这是最好的 <b>咖啡</b>，*最好* 喝。" + "填充" * 40 + "结尾还是最好。"
    hits = [{"term": "最好", "start": i, "end": i + 2}
            for i in range(len(content)) if content.startswith("最好", i)]
    row = {"content": content, "brand": "MiniBrew", "keywords": ["咖啡", "便携"],
           "checks": {"banned_found": hits, "required_missing": ["MiniBrew", "三分钟一杯"],
                      "keywords_missing": ["便携"], "passed": False}}
    at = _run_checks(row, language)
    assert texts(at, "warning") == [t("brands.check_failed_brand", name="MiniBrew")]
    body = at.markdown[-1].value
    assert body.count("<mark>") == 3
    assert "&#60;b&#62;" in body and "<b>" not in body  # the article's text is never markup
    assert "&#42;<mark>最好</mark>&#42;" in body  # nor Markdown
    sep = "、" if language == "zh" else ", "
    for line in (t("brands.check_banned", term="最好", count=3),
                 t("brands.check_required", terms=sep.join(["MiniBrew", "三分钟一杯"])),
                 t("brands.check_keywords", terms="便携")):
        escaped = "".join(f"&#{ord(c)};" if c in "\\`*_{}[]()#+-.!|~:$<>&\"'" else c
                          for c in line)
        assert escaped in body, line
    assert "…" in body  # the last one is an excerpt from far into the text


def test_show_checks_passed_and_nothing_to_show():
    ok = {"banned_found": [], "required_missing": [], "keywords_missing": [], "passed": True}
    at = _run_checks({"content": "x", "brand": "MiniBrew", "checks": ok}, "zh")
    assert texts(at, "success") == ["符合品牌规范“MiniBrew”"]
    at = _run_checks({"content": "x", "brand": None, "keywords": ["x"], "checks": ok})
    assert texts(at, "success") == ["Every keyword is covered"]
    for row in ({"content": "x", "checks": None}, {"content": "x"},
                {"content": "x", "brand": None, "keywords": [], "checks": ok},
                {"content": "x", "checks": "not json"}):
        at = _run_checks(row)
        assert not at.main.children or not [el for el in at.main if el.type in (
            "alert", "markdown", "success", "warning")], row
    # the stored JSON text works as well as the decoded dict; a stale offset is skipped
    stale = '{"banned_found": [{"term": "best", "start": 0, "end": 4}], "required_missing": [],' \
            ' "keywords_missing": [], "passed": false}'
    at = _run_checks({"content": "rewritten text", "brand": "k", "checks": stale})
    assert texts(at, "warning") == ["Does not pass brand kit «k»"]
    assert "<mark>" not in at.markdown[-1].value
    assert "Banned word «best» found once" in at.markdown[-1].value.replace("&#171;", "«")
