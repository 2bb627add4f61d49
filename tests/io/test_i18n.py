import re

from writer.brief import CONTENT_TYPES, LANGUAGES, STYLE_PRESETS
from writer.io.i18n import UI_LANGUAGES, Translator, strings
from writer.storage.store import STATUSES


def test_every_language_has_the_same_keys_and_placeholders():
    zh, en = strings("zh"), strings("en")
    # English may add a singular (`key_one`, used for count=1); Chinese needs none.
    singular = {k for k in en if k.endswith("_one") and k[:-4] in en}
    assert set(zh) == set(en) - singular
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
    assert t("write.progress", words=412, target=800, unit=t("units.zh")) == "412 / 800 字"
    assert t("write.progress", words=28, target=300, unit=t("units.en")) == "28 / 300 词"


def test_english_singular_for_a_count_of_one():
    en = strings("en")
    singulars = [k for k in en if k.endswith("_one") and k[:-4] in en]
    assert singulars  # "1 article", not "1 articles"
    for key in singulars:  # a singular takes no value its plural does not get
        assert set(re.findall(r"{(\w+)}", en[key])) <= set(re.findall(r"{(\w+)}", en[key[:-4]]))
    t = Translator("en")
    key = singulars[0][:-4]
    values = {name: 1 if name in ("count", "rows") else "x" for name in re.findall(r"{(\w+)}", en[key])}
    assert t(key, **values) == en[key + "_one"].format(**values)


def test_notices_are_in_the_ui_language_with_no_english_left():
    from views.common import notice_text
    from writer.generation.events import Notice
    from writer.kinds import NoticeKind

    retry = Notice(NoticeKind.RETRYING, "http://x/v1 had a server error (HTTP 503); try again later",
                   1.0, 4, 4, error_kind="server", status=503, provider="DeepSeek")
    assert notice_text(retry, Translator("zh")) == "模型服务暂时出错（HTTP 503）：1 秒后重试（第 4/4 次）"
    assert notice_text(retry, Translator("en")) == \
        "The provider had a server error (HTTP 503); retrying in 1 s (attempt 4 of 4)"
    failover = Notice(NoticeKind.FAILOVER, "a failed (…); switching to b", error_kind="auth",
                      status=401, provider="备用中转", failed_provider="DeepSeek")
    assert notice_text(failover, Translator("zh")) == \
        "DeepSeek 出错：API Key 被拒绝（HTTP 401）。已切换到备用服务 备用中转"
    assert notice_text(failover, Translator("en")) == \
        "DeepSeek failed: The API key was rejected (HTTP 401). Switched to the backup provider 备用中转"
