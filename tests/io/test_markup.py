"""writer/io/markup.py: words that stay text, and images in an answer that are never fetched."""
from __future__ import annotations

import html
import random

import pytest
from markdown_it import MarkdownIt

from writer.io.markup import ImageGuard, images_as_links, plain

RENDER = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
ANSWERS = [
    "![x](http://evil.example/a.png)",
    "a\\![x](u) and a\\\\![y](http://evil.example/b.png)",
    "![r][ref]\n\n[ref]: http://evil.example/p.png",
    "<pre>\n```\n</pre>\n![x](http://evil.example/c.png)\n",
    "- a\n  ```\n  ![in](u)\nout ![o](http://evil.example/d.png)",
    "Wow!![note](http://evil.example/e.png)!",
]


@pytest.mark.parametrize("answer", ANSWERS)
def test_no_image_survives_whole_or_streamed_in_any_pieces(answer):
    shown = images_as_links(answer)
    assert "<img" not in RENDER.render(shown)
    rng = random.Random(answer)
    for _ in range(100):
        guard, out, i = ImageGuard(), "", 0
        while i < len(answer):
            step = rng.randint(1, 4)
            out += guard.feed(answer[i:i + step])
            i += step
        assert out + guard.close() == shown  # the live view and the saved one agree


def test_code_looks_as_it_did():
    answer = "```md\n![alt](image.png)\n```\n"
    rendered = RENDER.render(images_as_links(answer))
    assert html.unescape(rendered).replace("\u2060", "") == RENDER.render(answer)


@pytest.mark.parametrize("text", [
    "[点此重新登录](http://evil.example/login)", "![x](http://evil.example/t.png)",
    "**bold** _it_ ~~s~~ `code` <b>tag</b> &amp; $x$", "# heading", "1. item", "- item",
    "www.evil.example", "http://evil.example", "mail@evil.example", "a\n# b\n\n- c",
])
def test_plain_is_shown_literally(text):
    rendered = RENDER.render(plain(text))
    assert "<a " not in rendered and "<img" not in rendered and "<h1" not in rendered
    assert "<li" not in rendered and "<strong" not in rendered and "<code" not in rendered
    assert " ".join(text.splitlines()) in html.unescape(rendered)


def test_plain_leaves_ordinary_words_alone():
    assert plain("kits.toml: 2 kits, HTTP 401") == "kits.toml: 2 kits, HTTP 401"
