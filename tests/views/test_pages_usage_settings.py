"""The Usage and Settings pages through AppTest (issue 13): local dates and days,
failed requests counted apart from articles, the cost chart, the grouped table's
headings, the CSV for Excel, the currency list, the saved-price confirmation, the
empty-model message and the About section. No network: the loopback fake provider."""
from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from streamlit.testing.v1 import AppTest

from fake_openai import Reply
from writer.access import Actor
from writer.io.i18n import Translator
from writer.storage.store import Store

ROOT = Path(__file__).resolve().parents[2]
BOM = b"\xef\xbb\xbf"

ADMIN = Actor("tester", "admin")  # the person at the machine (WRITER_AUTH=none)


def open_page(page: str, **context) -> AppTest:
    """app.py, then the page by its navigation; `context` is what st.context reports
    (e.g. the browser's time zone)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.context = context
    at.run()
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, at.exception
    return at


def add(store: Store, created_at: str, **fields) -> None:
    """An article row as the app saves one (only what Usage reads)."""
    row = {"created_at": created_at, "topic": "t", "content": "text", "status": "completed",
           "words": 10, "provider": "api.example.com", "model": "gpt-4o-mini",
           "content_type": "blog", "input_tokens": 100, "output_tokens": 200, "cost": 0.001,
           "currency": "USD", "usage_source": "reported", "target_words": 300}
    row.update(fields)
    if row["status"] == "failed" and "content" not in fields:
        row["content"], row["words"] = "", 0
    store.articles.insert(row)


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def set_period(at, since: dt.date, until: dt.date) -> AppTest:
    at.date_input(key="usage_period").set_value((since, until)).run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def store(env):
    return Store(env["WRITER_DB"])


@pytest.fixture
def zh(env, monkeypatch):
    monkeypatch.setenv("WRITER_UI_LANGUAGE", "zh")


# ---- Usage ------------------------------------------------------------------------------

def test_period_defaults_to_this_month_in_the_browsers_zone(env):
    # UTC+14 and UTC-11 are always on different dates: the page took the browser's.
    for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):
        at = open_page("usage", timezone=zone)
        today = dt.datetime.now(ZoneInfo(zone)).date()
        period = at.date_input(key="usage_period")
        assert period.value == (today.replace(day=1), today)
        assert period.label == "Period" and zone in period.help  # no "(UTC)"


def test_days_are_local_days_in_the_readers_zone(env, store, monkeypatch):
    monkeypatch.setenv("WRITER_TIMEZONE", "Asia/Shanghai")  # no browser zone in AppTest
    add(store, "2026-11-29T15:30:00.000Z")  # 11-29 23:30 in Shanghai: before the period
    add(store, "2026-11-29T16:30:00.000Z")  # 11-30 00:30 (UTC: still the 29th)
    add(store, "2026-11-30T15:00:00.000Z")  # 11-30 23:00
    add(store, "2026-11-30T17:30:00.000Z")  # 12-01 01:30 (UTC: still the 30th)
    add(store, "2026-12-01T16:30:00.000Z")  # 12-02 00:30: after the period
    at = set_period(open_page("usage"), dt.date(2026, 11, 30), dt.date(2026, 12, 1))
    assert metrics(at)["Articles"] == "3"
    table = at.dataframe[0].value
    assert list(table.columns)[0] == "Date"  # what the column is, not "Day" (the option)
    assert list(table["Date"]) == ["2026-11-30", "2026-12-01"]
    assert list(table["Articles"]) == [2, 1]


def test_failed_requests_are_counted_apart_from_articles(env, fake):
    fake.queue(Reply(text="An article that was written.", usage=(1000, 1000)), Reply(status=401))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()
    for topic in ("written", "refused"):
        at.text_input(key="topic").input(topic)
        at.checkbox(key="length_control").set_value(False)
        at.radio(key="language").set_value("en")
        at.button(key="generate").click().run()
    rows = {r["topic"]: r for r in Store(env["WRITER_DB"]).db.query("select * from articles")}
    assert rows["refused"]["status"] == "failed" and rows["refused"]["words"] == 0
    at.switch_page("views/usage.py").run()
    assert not at.exception
    figures = metrics(at)
    assert (figures["Articles"], figures["Failed requests"]) == ("1", "1")
    assert figures["Cost (USD)"] == "0.0008 USD"  # the refused request cost nothing
    assert not at.warning  # a refused request is not an unpriced article
    assert not [c for c in at.caption if "estimated tokens" in c.value]  # nor an estimated one
    at.selectbox(key="usage_by").set_value("model").run()
    (row,) = at.dataframe[0].value.to_dict("records")
    assert (row["Model"], row["Articles"], row["Failed requests"]) == ("gpt-4o-mini", 1, 1)


def test_grouped_table_is_headed_by_what_it_groups(zh, store):
    add(store, "2026-11-10T02:00:00.000Z", content_type="product_description")
    at = open_page("usage")
    at = set_period(at, dt.date(2026, 11, 1), dt.date(2026, 11, 30))
    heads = {}
    for by in ("day", "model", "provider", "type"):
        at.selectbox(key="usage_by").set_value(by).run()
        heads[by] = list(at.dataframe[0].value.columns)[0]
    assert heads == {"day": "日期", "model": "模型", "provider": "服务商", "type": "内容类型"}
    assert list(at.dataframe[0].value["内容类型"]) == ["产品描述"]  # the label, not the code


def test_csv_has_the_tables_headings_a_bom_and_no_formulas(zh, store, downloads):
    add(store, "2026-11-10T02:00:00.000Z", model="=HYPERLINK(1)")
    add(store, "2026-11-11T02:00:00.000Z", model="-2+3", cost=None, currency=None)
    add(store, "2026-11-12T02:00:00.000Z", status="failed", cost=0.0,
        input_tokens=0, output_tokens=0, usage_source="estimated")
    at = set_period(open_page("usage"), dt.date(2026, 11, 1), dt.date(2026, 11, 30))
    at.selectbox(key="usage_by").set_value("model").run()
    table = at.dataframe[0].value
    (name, data), = [(n, d) for n, d in downloads if n and n.startswith("usage-model-")][-1:]
    assert name == "usage-model-2026-11-01-2026-11-30.csv"
    assert data.startswith(BOM)
    rows = list(csv.reader(io.StringIO(data[len(BOM):].decode("utf-8"))))
    assert rows[0] == list(table.columns) == [
        "模型", "币种", "文章数", "失败的请求", "输入 tokens", "输出 tokens", "费用", "估算篇数",
        "未定价篇数"]
    by_model = {r[0]: dict(zip(rows[0], r)) for r in rows[1:]}
    assert set(by_model) == {"'=HYPERLINK(1)", "'-2+3", "gpt-4o-mini"}  # never a formula
    assert by_model["'-2+3"]["币种"] == "未定价" and by_model["'-2+3"]["未定价篇数"] == "1"
    assert (by_model["gpt-4o-mini"]["文章数"], by_model["gpt-4o-mini"]["失败的请求"]) == ("0", "1")


def test_no_empty_cost_chart_for_the_local_model(zh, store):
    add(store, "2026-11-10T02:00:00.000Z", provider="local", model="SmolLM2-135M-Instruct",
        cost=0.0, currency="local")
    at = set_period(open_page("usage"), dt.date(2026, 11, 1), dt.date(2026, 11, 30))
    charts = [e for e in at.main if e.type == "vega_lite_chart"]
    assert len(charts) == 1  # tokens only
    captions = [c.value for c in at.caption]
    assert "费用（local）" not in captions and any("没有已计价的费用" in c for c in captions)
    assert not [label for label in metrics(at) if "local" in label]
    assert at.dataframe[0].value["币种"].tolist() == ["本地模型（免费）"]
    add(store, "2026-11-11T02:00:00.000Z")  # a priced article: its chart, and only its
    at.run()
    assert len([e for e in at.main if e.type == "vega_lite_chart"]) == 2
    assert "费用（USD）" in [c.value for c in at.caption]
    assert not any("没有已计价的费用" in c.value for c in at.caption)


def test_one_article_is_singular_in_english(env, store):
    add(store, "2026-11-10T02:00:00.000Z", model="mystery", cost=None, currency=None,
        usage_source="estimated")
    at = set_period(open_page("usage"), dt.date(2026, 11, 1), dt.date(2026, 11, 30))
    assert [w.value for w in at.warning] == [
        "1 article uses a model with no price: its cost is not counted (it is not 0). "
        "Add its price on the Settings page."]
    assert any(c.value.startswith("1 of them has estimated tokens") for c in at.caption)


# ---- Settings ---------------------------------------------------------------------------

def test_currency_is_chosen_from_a_list(zh, store):
    store.set_budget("RMB", 100, actor=ADMIN)  # left by the old free-text field: still offered, to fix
    at = open_page("settings")
    assert "price_currency" not in [w.key for w in at.text_input]
    currency = at.selectbox(key="price_currency")
    assert currency.options[:6] == ["USD（美元）", "CNY（人民币）", "EUR（欧元）", "GBP（英镑）",
                                    "JPY（日元）", "HKD（港币）"]
    assert "RMB" in currency.options and not [o for o in currency.options if "local" in o]
    assert currency.value == "USD"


def test_saved_price_is_confirmed_after_the_rerun(env):
    at = open_page("settings")
    at.text_input(key="price_model").input("Mystery-Model")
    at.number_input(key="price_input").set_value(1.0)
    at.number_input(key="price_output").set_value(2.0)
    at.selectbox(key="price_currency").set_value("CNY")
    next(b for b in at.button if b.label == "Save price").click().run()
    assert not at.exception and not at.error
    (edit,) = Store(env["WRITER_DB"]).price_edits()
    assert (edit["model"], edit["provider"], edit["currency"]) == ("mystery-model", "*", "CNY")
    expected = ("Saved the price of mystery-model (any provider): input 1.0000, output 2.0000 "
                "CNY per 1M tokens.")
    assert [s.value for s in at.success][0].startswith(expected)  # after st.rerun
    assert [x.value for x in at.toast] == ["Saved the price of mystery-model"]
    first = at.dataframe[0].value.iloc[0]  # the saved row heads the price table
    assert (first["Model"], first["Provider"], first["Currency"], first["Source"]) == (
        "mystery-model", "*", "CNY (Chinese yuan)", "edited")
    at.run()  # the next click: the confirmation has been seen
    assert not at.success and not at.toast

    assert at.selectbox(key="price_remove").value == "any provider / mystery-model"
    at.button(key="price_remove_button").click().run()
    assert Store(env["WRITER_DB"]).price_edits() == []
    assert [s.value for s in at.success] == [
        "Removed the edited price of mystery-model (any provider); its default price, if there "
        "is one, applies again."]


def test_an_empty_model_is_refused_in_chinese(zh, env):
    at = open_page("settings")
    at.number_input(key="price_input").set_value(1.0)
    next(b for b in at.button if b.label == "保存价格").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["请填写模型名称（例如 deepseek-chat），再保存价格。"]
    assert Store(env["WRITER_DB"]).price_edits() == []


def test_about_says_where_things_are_and_how_to_set_the_key(zh, env, monkeypatch):
    monkeypatch.setenv("WRITER_TIMEZONE", "Asia/Shanghai")
    at = open_page("settings")
    assert "关于" in [h.value for h in at.subheader]
    about = next(m.value for m in at.markdown if "**数据库**：" in m.value)
    assert f"`{env['WRITER_DB']}`" in about
    assert "gpt-4o-mini" in about and "Asia/Shanghai（来自 WRITER_TIMEZONE）" in about
    assert "**界面语言**：中文" in about and "**API Key**：已配置" in about
    assert "OPENAI_API_KEY=" in at.code[0].value and "WRITER_MODEL=" in at.code[0].value
    assert "sk-test-secret" not in about + at.code[0].value

    monkeypatch.delenv("OPENAI_API_KEY")
    at = open_page("settings", timezone="Europe/Berlin")
    about = next(m.value for m in at.markdown if "**数据库**：" in m.value)
    assert "**API Key**：未配置" in about and "本地演示模型" in about
    assert "Europe/Berlin（来自浏览器）" in about
    assert any("OPENAI_API_KEY" in i.value and ".env" in i.value for i in at.info)


@pytest.mark.parametrize("language", ["zh", "en"])
def test_every_selectbox_has_a_placeholder_in_the_ui_language(env, store, monkeypatch,
                                                              language):
    monkeypatch.setenv("WRITER_UI_LANGUAGE", language)
    store.set_price(provider="*", model="x", input_per_1m=1, output_per_1m=1, currency="USD", actor=ADMIN)
    add(store, dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")[:23] + "Z")
    choose = Translator(language)("app.choose")
    for page in ("usage", "settings"):
        at = open_page(page)
        boxes = [b for b in at.main.selectbox]
        assert boxes, page
        assert {b.key: b.proto.placeholder for b in boxes} == {b.key: choose for b in boxes}
