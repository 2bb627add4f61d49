"""Two versions side by side with their differences marked, for the pages.

Text is compared in tokens that suit both languages: each CJK character is a token,
a run of Latin letters or digits is one, and so is each other character (spaces and
punctuation included), so a changed word or character is marked, not a whole line."""
from __future__ import annotations

import difflib
import html
import re

TOKEN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[A-Za-z0-9_\u00c0-\u024f]+|\s+|.", re.S)


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text)


def side_by_side(old: str, new: str) -> tuple[str, str]:
    """(old, new) as HTML: removed text in <del> on the left, added text in <ins> on
    the right, everything escaped, line breaks kept."""
    a, b = tokens(old), tokens(new)
    left, right = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        removed, added = "".join(a[i1:i2]), "".join(b[j1:j2])
        if op == "equal":
            left.append(_html(removed))
            right.append(_html(added))
            continue
        if removed:
            left.append(f"<del>{_html(removed)}</del>")
        if added:
            right.append(f"<ins>{_html(added)}</ins>")
    return "".join(left), "".join(right)


def changed_share(old: str, new: str) -> float:
    """How much changed, 0..1 (1 - similarity of the token sequences)."""
    return 1 - difflib.SequenceMatcher(None, tokens(old), tokens(new), autojunk=False).ratio()


def _html(text: str) -> str:
    return html.escape(text).replace("\n", "<br>")
