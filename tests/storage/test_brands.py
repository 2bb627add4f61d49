"""Brand kits (writer/brands.py): validation, TOML both ways, storage on both databases,
the check, the prompt, and a Job against the loopback provider."""
from __future__ import annotations

import json
import tomllib

import pytest

from fake_openai import Reply
from writer import brands
from writer.access import Actor
from writer.brands import BrandError, BrandKit, check, from_toml, split_items, to_toml
from writer.brief import Brief
from writer.config import load_settings
from writer.generation.prompts import load_prompts
from writer.runs.job import Job
from writer.storage import brands as brand_store
from writer.storage.search import Filters, search
from writer.storage.store import Store

ADMIN = Actor("boss", "admin")  # may change anything (writer/access.py)

KIT = BrandKit(
    name="MiniBrew 咖啡",
    voice='真诚、利落，像一位懂咖啡的朋友。\n少用感叹号；不说"最"字。',
    audience="25–35 岁的上班族",
    do=("多用短句", "先讲好处，再讲参数"),
    dont=("不要贬低竞品",),
    banned_words=("最好", "第一", "best"),
    required_terms=("MiniBrew", "三分钟一杯"),
    facts="重量 480 g\n萃取压力 15 bar\n价格 299 元",
    samples=("早上七点，MiniBrew 已经把第一杯浓缩递到你手里。",
             'A "quote", a back\\slash and\ttab\nand a second line ending in a quote"'),
)


# -- the kit ------------------------------------------------------------------------

def test_kit_is_cleaned_and_validated():
    kit = BrandKit(name="  Mini   Brew ", do="a\n\n b \na", banned_words=["x", " x ", ""],
                   samples="one sample\nover two lines", facts="f\r\ng")
    assert kit.name == "Mini Brew" and kit.do == ("a", "b") and kit.banned_words == ("x",)
    assert kit.samples == ("one sample\nover two lines",) and kit.facts == "f\ng"
    with pytest.raises(BrandError) as error:
        BrandKit(name="   ")
    assert error.value.code == "name_empty"
    for kwargs, code in ((dict(name="n" * 61), "name_long"),
                         (dict(name="k", voice="v" * 4001), "text_long"),
                         (dict(name="k", samples=["a", "b", "c"]), "too_many_samples"),
                         (dict(name="k", banned_words=[str(i) for i in range(51)]),
                          "too_many_items"),
                         (dict(name="k", required_terms=["r" * 201]), "item_long")):
        with pytest.raises(BrandError) as error:
            BrandKit(**kwargs)
        assert error.value.code == code, kwargs
        assert "\n" not in str(error.value)
    assert error.value.field == "required_terms" and error.value.values == {"limit": 200}


def test_split_items_one_per_line_or_comma_separated():
    assert split_items("最好, 第一，best；顶级、 极致") == ("最好", "第一", "best", "顶级", "极致")
    # several lines: a comma stays inside its line (a slogan)
    assert split_items("MiniBrew\n每一杯，都新鲜\n\n") == ("MiniBrew", "每一杯，都新鲜")
    assert split_items("") == ()


# -- TOML ---------------------------------------------------------------------------

def test_toml_round_trip_with_chinese_quotes_backslashes_and_newlines():
    text = to_toml(KIT)
    assert tomllib.loads(text)["name"] == KIT.name  # valid TOML by the standard parser
    assert 'voice = """' in text  # multi-line texts stay readable
    assert "三分钟一杯" in text  # Chinese written as is, not escaped
    (back,) = from_toml(text)
    assert back == KIT
    (back,) = from_toml(text.encode("utf-8"))  # bytes from an upload
    assert back == KIT


@pytest.mark.parametrize("awkward", [
    '"', '""', '"""', 'ends with "', '"starts', 'a """ b """" c', "back\\", "\\n literal",
    "line\nbreak\\\n", "tab\tand\x01control", "中文“弯引号”『』", "\u2028separator",
])
def test_toml_round_trip_of_awkward_texts(awkward):
    kit = BrandKit(name=f"k{awkward}"[:60].replace("\n", " "), voice=f"v\n{awkward}",
                   audience=awkward, facts=awkward, do=(awkward,), banned_words=(awkward,),
                   samples=(f"s\n{awkward}", awkward))
    (back,) = from_toml(to_toml(kit))
    assert back == kit


def test_import_of_several_kits_and_friendly_errors():
    text = """
[[brands]]
name = "MiniBrew"
banned_words = ["最好", "第一"]
samples = \"\"\"
一段样例
两行\"\"\"

[[brands]]
name = "TeaTime"
do = "短句\\n口语"
"""
    first, second = from_toml(text)
    assert first.name == "MiniBrew" and first.banned_words == ("最好", "第一")
    assert first.samples == ("一段样例\n两行",)  # one text = one sample
    assert second.do == ("短句", "口语")
    assert [k.name for k in from_toml(brands.to_toml_all([first, second]))] == [
        "MiniBrew", "TeaTime"]
    cases = {
        'name = "x"\nvoice = """unclosed': ("toml_syntax", "not valid TOML"),
        'voice = "no name"': ("toml_no_name", "has no name"),
        '': ("toml_empty", "no brand kit"),
        'name = "x"\ntone = "warm"': ("toml_key", "unknown key 'tone'"),
        'name = "x"\nbanned_words = [1, 2]': ("toml_type", "banned_words must be a list"),
        'name = "x"\nvoice = 3': ("toml_type", "voice must be a text"),
        'name = "x"\n[[brands]]\nname = "y"': ("toml_mixed", "top-level keys too: name"),
        '[[brands]]\nname = "x"\n[[brands]]\nname = "x"': ("toml_duplicate", "two kits named"),
        '[[brands]]\nname = "x"\n[[brands]]\nvoice = "?"': ("toml_no_name", "kit 2 has no name"),
        '[[brands]]\nname = "ok"\n[[brands]]\nname = "x"\ndont = 5': ("toml_type", "kit 2 («x»)"),
    }
    for text, (code, words) in cases.items():
        with pytest.raises(BrandError) as error:
            from_toml(text)
        assert error.value.code == code, text
        assert words in str(error.value), (text, str(error.value))
        assert "\n" not in str(error.value).strip()
    with pytest.raises(BrandError) as error:
        from_toml(b"name = '\xff'")
    assert error.value.code == "toml_encoding"


# -- storage ------------------------------------------------------------------------

def test_save_update_get_list_delete_on_a_real_database(database):
    path = database
    store = Store(path)
    kit_id = brand_store.save(store, KIT, actor=ADMIN)
    other = brand_store.save(store, BrandKit(name="alpha", banned_words=("x",)), actor=ADMIN)
    assert kit_id != other
    got = brand_store.get(Store(path), KIT.name)  # another connection sees it
    assert got == KIT and got.id == kit_id
    assert brand_store.get(store, kit_id) == KIT
    assert brand_store.get(store, "minibrew 咖啡") == KIT  # case-insensitive when unambiguous
    assert brand_store.get(store, "nope") is None and brand_store.get(store, 999) is None
    assert [k.name for k in brand_store.listing(store)] == ["alpha", "MiniBrew 咖啡"]
    # saving by name updates the kit with that name
    assert brand_store.save(store, BrandKit(name=KIT.name, voice="新的语气"), actor=ADMIN) == kit_id
    assert brand_store.get(store, kit_id).voice == "新的语气" and len(brand_store.listing(store)) == 2
    # a kit read back (with its id) can be renamed, but not onto another kit's name
    renamed = BrandKit(**{**brand_store.get(store, kit_id).as_dict(), "name": "MiniBrew"}, id=kit_id)
    assert brand_store.save(store, renamed, actor=ADMIN) == kit_id
    assert brand_store.names(store) == ["alpha", "MiniBrew"]
    with pytest.raises(BrandError) as error:
        brand_store.save(store, BrandKit(name="alpha", id=kit_id), actor=ADMIN)
    assert error.value.code == "name_taken"
    row = store.conn.execute("SELECT kit, created_at, updated_at FROM brands WHERE id = ?",
                           [kit_id]).fetchone()
    assert json.loads(row[0])["voice"] == "新的语气" and "name" not in json.loads(row[0])
    assert row[1] <= row[2]
    assert brand_store.delete(store, "MiniBrew", actor=ADMIN) is True
    assert brand_store.delete(store, "MiniBrew", actor=ADMIN) is False
    assert brand_store.names(store) == ["alpha"]


# -- the check -----------------------------------------------------------------------

def test_check_positions_for_chinese_and_english_banned_words():
    kit = BrandKit(name="k", banned_words=("最好", "best", "art"))
    text = "这是最好的咖啡。The Best coffee, best art.\nStart smart: 最好！"
    result = check(text, kit)
    found = [(f.term, f.start, f.end, text[f.start:f.end]) for f in result.banned_found]
    assert found == [("最好", 2, 4, "最好"), ("best", 12, 16, "Best"), ("best", 25, 29, "best"),
                     ("art", 30, 33, "art"), ("最好", 48, 50, "最好")]
    # whole words only for Latin terms: "Start" and "smart" do not contain the word "art"
    assert not result.passed
    assert result.as_dict()["banned_found"][0] == {"term": "最好", "start": 2, "end": 4}
    # a Latin term next to Chinese characters still counts as a word
    assert [f.start for f in check("用AI写作", BrandKit(name="k", banned_words=("AI",)))
            .banned_found] == [1]


def test_check_required_terms_and_keywords():
    kit = BrandKit(name="k", required_terms=("MiniBrew", "三分钟一杯", "Brew"))
    result = check("minibrew：三分钟一杯。", kit, keywords=("咖啡", "便携", "MiniBrew"))
    assert result.required_missing == ("Brew",)  # "Brew" is not a word of "minibrew"
    assert result.keywords_missing == ("咖啡", "便携")
    assert result.as_dict() == {"banned_found": [], "required_missing": ["Brew"],
                                "keywords_missing": ["咖啡", "便携"], "passed": False}
    assert check("随便写写", None).passed  # no kit, no keywords: nothing to miss
    assert check("咖啡", None, keywords=("咖啡",)).passed


# -- the prompt ----------------------------------------------------------------------

def test_prompt_has_the_kits_parts_only_with_a_kit():
    prompts = load_prompts()
    for content_type in prompts.templates:
        with_kit = prompts.render(Brief(topic="新品上市", content_type=content_type, brand=KIT))
        system = with_kit[0]["content"]
        for part in ("MiniBrew 咖啡", "懂咖啡的朋友", "25–35 岁的上班族", "多用短句; 先讲好处，再讲参数",
                     "不要贬低竞品", "最好; 第一; best", "MiniBrew; 三分钟一杯",
                     "萃取压力 15 bar", "早上七点", "a second line"):
            assert part in system, (content_type, part)
        assert "{" not in system.replace('"', "")  # every placeholder filled
        without = prompts.render(Brief(topic="新品上市", content_type=content_type))
        plain = without[0]["content"] + without[1]["content"]
        for brand_words in ("brand kit", "Brand voice", "Never use these words", "MiniBrew"):
            assert brand_words not in plain, (content_type, brand_words)
        assert without[1] == with_kit[1]  # the kit goes in the system message only


def test_brief_keeps_its_kit_through_a_dict():
    brief = Brief(topic="t", brand=KIT)
    data = json.loads(json.dumps(brief.as_dict(), ensure_ascii=False))
    assert data["brand"]["banned_words"] == ["最好", "第一", "best"]
    assert Brief(**{**data, "keywords": tuple(data["keywords"])}).brand == KIT


# -- a job -------------------------------------------------------------------------

def _checks(row: dict) -> dict:
    value = row["checks"]
    return json.loads(value) if isinstance(value, str) else value


def test_a_job_stores_brand_and_checks_on_the_article(backend_env, fake):
    store = Store(backend_env["database"])
    brand_store.save(store, KIT, actor=ADMIN)
    kit = brand_store.get(store, KIT.name)
    article = "# 新品\n\nMiniBrew 是最好的便携咖啡机。\n"
    fake.queue(Reply(text=article, chunk_chars=5))
    job = Job(Brief(topic="新品上市", target_words=100, keywords="便携, 意式", brand=kit),
              load_settings(), length_control=False)
    list(job.run())
    system = fake.requests[0]["messages"][0]["content"]
    assert "MiniBrew 咖啡" in system and "最好; 第一; best" in system
    row = store.get(job.article_id)
    assert row["status"] == "completed" and row["brand"] == "MiniBrew 咖啡"
    checks = _checks(row)
    start = article.index("最好")
    assert checks == {"banned_found": [{"term": "最好", "start": start, "end": start + 2}],
                      "required_missing": ["三分钟一杯"], "keywords_missing": ["意式"],
                      "passed": False}
    # History's "failed the check" filter finds it, and not an article that passed
    fake.queue(Reply(text="MiniBrew：三分钟一杯，便携又意式。"))
    passing = Job(Brief(topic="另一篇", target_words=100, keywords="便携", brand=kit),
                  load_settings(), length_control=False)
    list(passing.run())
    assert _checks(store.get(passing.article_id))["passed"] is True
    assert [r["id"] for r in search(store, Filters(check_failed=True)).rows] == [job.article_id]
    assert {r["id"] for r in search(store, Filters(brand="MiniBrew 咖啡")).rows} == {
        job.article_id, passing.article_id}
    assert [r["id"] for r in search(store, Filters(query="新品上市", check_failed=True)).rows] \
        == [job.article_id]
