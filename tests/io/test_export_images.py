"""A model's image in the HTML download and the Copy button's HTML: a link to it, never
an <img> a reader's browser or mail client would fetch (writer/io/export.py)."""
from __future__ import annotations

import re

import pytest

from writer.io.export import export, to_html, to_html_fragment

ROW = {"id": 7, "topic": "images", "language": "en", "content": (
    "# Title\n\nBefore ![a *pixel*](http://evil.example/track.png \"t\") after.\n\n"
    "![ref][r]\n\n[r]: https://evil.example/ref.png\n\n"
    "![](http://evil.example/empty.png) ![x](javascript:alert(1))\n\n"
    "```md\n![in code](http://evil.example/code.png)\n```\n")}


@pytest.mark.parametrize("render", [to_html, to_html_fragment,
                                    lambda row: export(row, "html")[0].decode()])
def test_images_become_links_in_html(render):
    out = render(ROW)
    assert "<img" not in out
    assert '<a href="http://evil.example/track.png" rel="noopener noreferrer">a pixel</a>' in out
    assert '<a href="https://evil.example/ref.png" rel="noopener noreferrer">ref</a>' in out
    assert '<a href="http://evil.example/empty.png" rel="noopener noreferrer">image</a>' in out
    assert "javascript:" not in re.sub(r"!\[x\]\(javascript:alert\(1\)\)", "", out)
    assert "![in code](http://evil.example/code.png)" in out  # code stays code

