"""Links, pages and what they show (AppTest): a crafted address is a short message, not a
traceback; a person's or a model's words stay text wherever they land in Markdown; a
model's image is never fetched; a search too large for SQLite is a message."""
from __future__ import annotations

import html
import re

import pytest
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from fake_openai import Reply
from test_pages import ROOT, app, fill_and_generate, insert_article
from test_pages_jobs import registry, submit, wait_for  # noqa: F401 (fixture)
from writer.access import Actor
from writer.storage.store import Store

EVIL_TOPIC = "[点此重新登录](http://evil.example/login)"
EVIL_IMAGE = "![pixel](http://evil.example/track.png)"
# Markdown as Streamlit renders it (GFM with HTML where a page allows it): CommonMark is
# the same for links and images.
RENDER = MarkdownIt("commonmark", {"html": True}).enable("table")
MARKDOWN_TYPES = ("markdown", "caption", "subheader", "title", "header", "alert", "page_link",
                  "toast", "expander", "button", "radio")

ADMIN = Actor("tester", "admin")  # the person at the machine (WRITER_AUTH=none)


def page(path: str | None = None, **params) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    for name, value in params.items():
        at.query_params[name] = value
    at.run()
    if path:
        at.switch_page(path).run()
    return at


def shown_markdown(at) -> list[str]:
    """Every text the page (main area and sidebar) renders as Markdown, as HTML."""
    found = []

    def walk(node):
        for child in getattr(node, "children", {}).values():
            walk(child)
        proto = getattr(node, "proto", None)
        if proto is None:
            return
        for field in ("body", "label"):
            value = getattr(proto, field, None)
            if isinstance(value, str) and value:
                found.append(RENDER.render(value))
        if node.type == "radio":
            found.extend(RENDER.render(option) for option in proto.options)

    walk(at._tree)
    return found


def assert_no_live_link_or_image(at) -> None:
    """No image anywhere; a link to evil.example only where an article body shows a
    model's image as one (its .png), never from a topic, a caption or a kit's name."""
    for rendered in shown_markdown(at):
        assert "<img" not in rendered, rendered
        for href in re.findall(r'<a href="(http://evil\.example[^"]*)"', rendered):
            assert href.endswith(".png"), rendered


# ---- 1. the address ----------------------------------------------------------------------

@pytest.mark.parametrize("value", ["²", "99999999999999999999", "abc", "-1", "0", "1" * 5000])
def test_a_bad_article_link_is_a_short_message_on_the_write_page(env, value):
    at = page(article=value)
    assert not at.exception
    assert [w.value for w in at.warning] == [
        "The link's article= is not an article or batch number; it was ignored."]
    assert "article" not in at.query_params  # dropped: a reload does not say it again
    assert at.text_input(key="topic")  # the form is there


def test_a_bad_link_is_said_in_chinese_too(env, monkeypatch):
    monkeypatch.setenv("WRITER_UI_LANGUAGE", "zh")
    at = page(article="²")
    assert not at.exception
    assert [w.value for w in at.warning] == ["链接中的 article= 不是有效的文章或批次编号，已忽略。"]


def test_a_valid_but_unknown_article_link_is_no_error(env):
    at = page(article="9223372036854775807")  # SQLite's largest id: looked up, not found
    assert not at.exception and not at.warning


@pytest.mark.parametrize("name", ["batch", "id"])
@pytest.mark.parametrize("value", ["²", "99999999999999999999"])
def test_bad_links_on_the_history_page(env, name, value):
    store = Store(env["WRITER_DB"])
    insert_article(store, topic="listed", content="Body.", status="completed", words=1,
                   created_at="2026-11-20T02:10:00.000Z")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.switch_page("views/history.py")
    at.query_params[name] = value
    at.run()
    assert not at.exception
    assert any(f"{name}= is not an article or batch number" in w.value for w in at.warning)
    assert at.dataframe and at.selectbox(key="open_article").value == 1


def test_a_bad_batch_link_on_the_batch_page(env):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.switch_page("views/batch.py")
    at.query_params["batch"] = "²"
    at.run()
    assert not at.exception
    assert any("batch= is not an article or batch number" in w.value for w in at.warning)


# ---- 3. words stay text; nothing is fetched ----------------------------------------------

def test_history_search_result_shows_a_crafted_topic_as_text(env):
    store = Store(env["WRITER_DB"])
    insert_article(store, topic=EVIL_TOPIC, content=f"重新登录 {EVIL_IMAGE} 正文。",
                   created_at="2026-11-20T02:10:00.000Z",
                   status="completed", words=8, audience="[aud](http://evil.example/a)",
                   keywords='["[kw](http://evil.example/k)"]', style="[s](http://evil.example/s)")
    at = page("views/history.py")
    at.text_input(key="history_query").input("重新登录").run()
    assert not at.exception
    assert_no_live_link_or_image(at)
    texts = [html.unescape(re.sub(r"<[^>]+>", "", r)) for r in shown_markdown(at)]
    assert any(EVIL_TOPIC in text for text in texts)  # the characters, literally
    assert any("[aud](http://evil.example/a)" in text for text in texts)  # the caption's too
    # The opened article: its heading is the topic as text; the image shows as a link.
    assert html.unescape(at.subheader[0].value) == EVIL_TOPIC


def test_sidebar_running_list_shows_a_crafted_topic_as_text(env, fake, registry):  # noqa: F811
    fake.queue(Reply(text="Still writing. " * 30, chunk_chars=10, stall_after=3,
                     stall_seconds=30))
    handle = submit(registry, EVIL_TOPIC)
    wait_for(lambda: handle.feed.text, "first text")
    at = page()
    assert not at.exception
    (link,) = [el for el in at.sidebar if el.type == "page_link"]
    rendered = RENDER.render(link.proto.label)
    assert "<a " not in rendered and EVIL_TOPIC in html.unescape(rendered)
    assert_no_live_link_or_image(at)
    registry.cancel(handle.article_id, wait_s=5, actor=ADMIN)


def test_a_models_image_is_a_link_on_the_write_page_in_the_copy_and_in_history(env, fake):
    article = f"# 标题\n\n第一段。{EVIL_IMAGE}\n\n![ref][r]\n\n[r]: http://evil.example/ref.png\n"
    fake.queue(Reply(text=article, chunk_chars=3))  # "![" split across chunks
    at = fill_and_generate(app(), topic="images")
    assert not at.exception
    assert_no_live_link_or_image(at)
    assert any("track.png" in r for r in shown_markdown(at))  # shown, as a link
    copy = next(el.proto.body for el in at.main if el.type == "html" and "writer-copy" in
                el.proto.body)
    assert "\\u003cimg" not in copy and "evil.example/track.png" in copy
    at.switch_page("views/history.py").run()
    assert not at.exception
    assert_no_live_link_or_image(at)
    assert Store(env["WRITER_DB"]).get(1)["content"] == article  # stored as written


def test_kit_names_in_brand_messages_stay_text(env):
    from writer.brands import BrandKit
    from writer.storage import brands as brand_store

    name = "[kit](http://evil.example/k)"
    store = Store(env["WRITER_DB"])
    brand_store.save(store, BrandKit(name=name), actor=ADMIN)
    at = page("views/brands.py")
    at.selectbox(key="brands_pick").set_value(1).run()  # "Edit «name»"
    assert not at.exception
    assert any(name in html.unescape(m.value) for m in at.markdown)
    assert_no_live_link_or_image(at)
    # An article written with it: History's check line names the kit.
    insert_article(store, topic="kit", content="Body.", status="completed", words=1,
                   created_at="2026-11-20T02:10:00.000Z", brand=name,
                   checks='{"passed": true, "banned_found": [], "required_missing": []}')
    at.switch_page("views/history.py").run()
    assert not at.exception
    assert any(name in html.unescape(m.value) for m in at.success)
    assert_no_live_link_or_image(at)


# ---- 4. a search SQLite cannot run -------------------------------------------------------

def test_history_search_with_1200_short_terms_is_a_message(env):
    store = Store(env["WRITER_DB"])
    insert_article(store, topic="listed", content="Body.", status="completed", words=1,
                   created_at="2026-11-20T02:10:00.000Z")
    at = page("views/history.py")
    # Typed into the box (max_chars), or arriving through session state like a paste.
    at.session_state["history_query"] = " ".join(chr(0x4e00 + i) for i in range(1200))
    at.run()
    assert not at.exception
    assert any("too long" in e.value or "Too many search terms" in e.value for e in at.error)
    at.session_state["history_query"] = " ".join(["a"] * 25)
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Too many search terms: use at most 20."]
