import re

from writer.brief import CONTENT_TYPES, LANGUAGES, STYLE_PRESETS
from writer.i18n import UI_LANGUAGES, Translator, strings
from writer.store import STATUSES


def test_every_language_has_the_same_keys_and_placeholders():
    zh, en = strings("zh"), strings("en")
    assert set(zh) == set(en)
    for key in zh:
        assert set(re.findall(r"{(\w+)}", zh[key])) == set(re.findall(r"{(\w+)}", en[key])), key


def test_labels_exist_for_every_option():
    for language in UI_LANGUAGES:
        t = Translator(language)
        for content_type in CONTENT_TYPES:
            assert t(f"content_types.{content_type}")
        for style in STYLE_PRESETS:
            assert t(f"styles.{style}")
        for code in LANGUAGES:
            assert t(f"languages.{code}")
        for status in STATUSES:
            assert t(f"statuses.{status}")


def test_chinese_presets_match_the_product_brief():
    t = Translator("zh")
    assert [t(f"styles.{s}") for s in STYLE_PRESETS] == ["专业", "轻松", "说服力", "故事化"]
    assert t("write.progress", words=412, target=800) == "412 / 800 字"
