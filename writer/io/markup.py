"""Text that must stay text, and model answers that must not fetch anything.

`plain(text)`: a user's or a model's words (a topic, a kit's name, a provider's error)
placed inside Markdown (a page's message, a heading, a link's label) or inside HTML:
every character Markdown, Streamlit's `:color[...]` / `$math$` directives or HTML would
act on becomes a character reference, and line breaks become spaces. A topic such as
`[log in](http://evil.example/login)` then shows as those characters, not as a link.

`ImageGuard` / `images_as_links(markdown)`: an article body is Markdown and is rendered
as such, but an image in it (`![x](http://…)`, also reference-style) would be fetched by
the reader's browser the moment it is shown: a model answer must not make the page load
remote resources. An invisible WORD JOINER goes between the `!` and the `[` of every
`![`, so an image shows as a `!` and a link the reader may follow, nothing is fetched,
and a `![…](…)` inside a code block looks as it did (no backslash appears). Not parsed,
so no parser disagreement (HTML blocks, containers) can let one through. The guard works
on a stream (it holds back a trailing `!` until the next piece), so the live view and the
saved article show the same text. Only what is shown changes, never what is stored.
"""
from __future__ import annotations

import re

# Acted on anywhere in a line: emphasis, code, links and images, HTML, math, strikethrough,
# Streamlit's :color[...] (needs "["), e-mail autolinks.
_REFERENCES = {ord(ch): f"&#{ord(ch)};" for ch in "\\`*_{}[]()<>&$~@"}
# Acted on at the start of a line only: headings, lists, quotes, rules, setext underlines.
_LINE_START = re.compile(r"^(\s*)(?:([#+\-=])|(\d+)([.)]))")
# Autolinked without any markup (GFM): http://, https://, www.
_AUTOLINK = re.compile(r"(?i)(?<=[a-z])://|(?<![a-z0-9])www\.")


def plain(text: object) -> str:
    """`text` as literal text inside Markdown or HTML, on one line: what Markdown would
    act on becomes a character reference (`[` → `&#91;`), the rest stays as it is."""
    line = " ".join(str(text if text is not None else "").splitlines()).translate(_REFERENCES)
    line = _AUTOLINK.sub(lambda m: m.group().replace(":", "&#58;").replace(".", "&#46;"), line)
    return _LINE_START.sub(lambda m: m.group(1) + (
        f"&#{ord(m.group(2))};" if m.group(2) else f"{m.group(3)}&#{ord(m.group(4))};"), line)


_JOINER = "\u2060"  # WORD JOINER: invisible, and "!" + it + "[" is no image start


class ImageGuard:
    """Breaks image starts in Markdown fed piece by piece (`feed`, then `close`)."""

    def __init__(self) -> None:
        self._held = ""  # a trailing "!": the next piece may start with "["

    def feed(self, text: str) -> str:
        text, self._held = self._held + text, ""
        if text.endswith("!"):
            text, self._held = text[:-1], "!"
        return text.replace("![", "!" + _JOINER + "[")

    def close(self) -> str:
        """What is held back, at the end of the text."""
        held, self._held = self._held, ""
        return held


def images_as_links(markdown: str) -> str:
    """`markdown` with every image shown as "!" and a link (nothing for a browser to fetch)."""
    if not markdown or "![" not in markdown:
        return markdown
    return markdown.replace("![", "!" + _JOINER + "[")
