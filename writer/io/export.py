"""Export one saved article (a row of the `articles` table) as md, txt, html, docx or json.

The Markdown is parsed once by markdown-it-py into a flat list of `Block`s (heading,
paragraph, code, table, rule) carrying their list/quote context; the plain-text and
Word renderers only turn those blocks into output. Raw HTML in the Markdown is never
passed through: it is escaped in HTML and kept as literal text elsewhere. An image is
never an <img>: the HTML file and the clipboard show its alt text as a link to it (a
model answer must not make a reader's browser fetch anything).

Model output can hold characters XML 1.0 forbids (NUL, ESC, other C0 controls, U+FFFE,
lone surrogates); python-docx refuses them and UTF-8 cannot encode a lone surrogate.
Every renderer therefore works on `clean_row(row)`: each string of the row with those
characters removed (`xml_safe`), so no format crashes on what a model wrote.
"""
from __future__ import annotations

import datetime as dt
import functools
import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import BytesIO
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from markdown_it import MarkdownIt
from markdown_it.token import Token

from writer.io.i18n import article_unit

if TYPE_CHECKING:  # python-docx is imported by to_docx only: it is slow to load
    from docx.document import Document
    from docx.text.paragraph import Paragraph

FORMATS = ("md", "txt", "html", "docx", "json")
MIME_TYPES = {
    "md": "text/markdown; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "json": "application/json",
}
EXTENSIONS = {fmt: fmt for fmt in FORMATS}
CJK_FONT = "Microsoft YaHei"
MONO_FONT = "Consolas"
HR_TEXT = "----------"
APP_NAME = "AI Writing Assistant"  # docx author / last modified by
_CORE_PROPERTY_MAX = 255  # python-docx refuses longer core-property strings

# Not allowed in XML 1.0: C0 controls other than \t \n \r, surrogates, U+FFFE, U+FFFF.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_SURROGATE_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")

# html=False: `<script>` in an article is text, never markup; javascript: links are refused.
_MD = MarkdownIt("commonmark", {"html": False}).enable("table")


def _image_as_link(self, tokens: list[Token], idx: int, options, env) -> str:
    """An image in a model answer, in the HTML file and the clipboard: its alt text as a
    link to it, never an <img> (a reader's browser or mail client would fetch it)."""
    token = tokens[idx]
    alt = html.escape(self.renderInlineAsText(token.children or [], options, env) or "image")
    src = str(token.attrGet("src") or "")
    if not src:
        return alt
    return f'<a href="{html.escape(src)}" rel="noopener noreferrer">{alt}</a>'


_MD.add_render_rule("image", _image_as_link)

_CSS = """
body { max-width: 46rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.75; color: #222;
  font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "PingFang SC",
  "Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC", "Source Han Sans SC", sans-serif; }
h1, h2, h3, h4, h5, h6 { line-height: 1.3; margin: 1.6em 0 .6em; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .9em; }
pre { background: #f6f8fa; padding: 1rem; overflow-x: auto; border-radius: 6px; }
blockquote { margin: 1em 0; padding: 0 1em; border-left: 4px solid #ddd; color: #555; }
table { border-collapse: collapse; } th, td { border: 1px solid #ddd; padding: .4em .7em; }
img { max-width: 100%; } a { color: #0969da; }
""".strip()


@dataclass(eq=False)  # hashed by identity: the Word renderer keys numbering by list
class ListState:
    ordered: bool
    start: int
    next: int


@dataclass
class Block:
    kind: str  # heading | paragraph | code | table | rule
    spans: list[Token] = field(default_factory=list)  # inline tokens
    text: str = ""  # code block content
    level: int = 0  # heading level
    rows: list[list[list[Token]]] = field(default_factory=list)  # table cells' inline tokens
    depth: int = 0  # list nesting, 0 = not in a list
    marker: str = ""  # "- " or "3. " on the first paragraph of a list item
    list: ListState | None = None  # innermost open list
    quote: int = 0  # blockquote nesting


class Span(NamedTuple):
    text: str
    bold: bool = False
    italic: bool = False
    code: bool = False


def xml_safe(text: str) -> str:
    """`text` without the characters XML 1.0 (and so Word) forbids; a surrogate pair
    left split in two code points is joined into its character first."""
    if _SURROGATE_PAIR.search(text):
        text = _SURROGATE_PAIR.sub(
            lambda m: m.group().encode("utf-16-le", "surrogatepass").decode("utf-16-le"), text)
    return _XML_INVALID.sub("", text)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return xml_safe(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_clean(item) for item in value)
    if isinstance(value, dict):
        return {_clean(key): _clean(item) for key, item in value.items()}
    return value


def clean_row(row: dict) -> dict:
    """A copy of the row whose strings (keys, values, keyword lists) are `xml_safe`."""
    return _clean(dict(row))


def _safe(renderer: Callable[[dict], Any]) -> Callable[[dict], Any]:
    """Every renderer sees the cleaned row, whoever calls it."""
    @functools.wraps(renderer)
    def render(row: dict) -> Any:
        return renderer(clean_row(row))
    return render


def _content(row: dict) -> str:
    return str(row.get("content") or "")


def _lang_tag(row: dict) -> str:
    return "zh-CN" if str(row.get("language") or "").lower().startswith("zh") else "en"


def _blocks(markdown: str) -> Iterator[Block]:
    """Flatten markdown-it's token stream into blocks that know their list/quote context."""
    lists: list[ListState] = []
    quote = heading = 0
    marker = ""
    table: list[list[list[Token]]] | None = None
    for tok in _MD.parse(markdown):
        kind = tok.type
        if kind in ("bullet_list_open", "ordered_list_open"):
            start = int(tok.attrGet("start") or 1)
            lists.append(ListState(kind == "ordered_list_open", start, start))
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
        elif kind == "list_item_open":
            marker = f"{lists[-1].next}. " if lists[-1].ordered else "- "
            lists[-1].next += 1
        elif kind in ("blockquote_open", "blockquote_close"):
            quote += 1 if kind == "blockquote_open" else -1
        elif kind in ("heading_open", "heading_close"):
            heading = int(tok.tag[1:]) if kind == "heading_open" else 0
        elif kind == "table_open":
            table = []
        elif kind == "tr_open" and table is not None:
            table.append([])
        elif kind == "inline" and table is not None:
            table[-1].append(tok.children or [])
        elif kind == "table_close" and table is not None:
            yield Block("table", rows=table, quote=quote)
            table = None
        elif kind in ("inline", "fence", "code_block", "hr"):
            context = dict(depth=len(lists), marker=marker, quote=quote,
                           list=lists[-1] if lists else None)
            if kind == "inline":
                yield Block("heading" if heading else "paragraph", tok.children or [],
                            level=heading, **context)
            elif kind == "hr":
                yield Block("rule", **context)
            else:
                yield Block("code", text=tok.content.rstrip("\n"), **context)
            marker = ""


def _spans(children: list[Token]) -> Iterator[Span]:
    """Inline tokens as styled text; links become "text (url)"."""
    bold = italic = 0
    links: list[Token] = []
    for tok in children:
        kind = tok.type
        if kind in ("strong_open", "strong_close"):
            bold += 1 if kind == "strong_open" else -1
        elif kind in ("em_open", "em_close"):
            italic += 1 if kind == "em_open" else -1
        elif kind == "link_open":
            links.append(tok)
        elif kind == "link_close":
            link = links.pop()
            href = str(link.attrGet("href") or "")
            if href and link.markup != "autolink":
                yield Span(f" ({href})")
        elif kind in ("softbreak", "hardbreak"):
            yield Span("\n")
        else:  # text, code_inline, image (content = alt text)
            yield Span(tok.content, bold > 0, italic > 0, kind == "code_inline")


def _plain(children: list[Token]) -> str:
    return "".join(span.text for span in _spans(children))


def _prefix(text: str, first: str, rest: str) -> str:
    lines = text.split("\n")
    heads = [first] + [rest] * (len(lines) - 1)
    return "\n".join(head + line if line else head.rstrip() for head, line in zip(heads, lines))


def _block_text(block: Block) -> str:
    if block.kind == "table":
        body = "\n".join(" | ".join(_plain(cell) for cell in row) for row in block.rows)
    elif block.kind == "code":
        body = block.text
    elif block.kind == "rule":
        body = HR_TEXT
    else:
        body = _plain(block.spans)
    if block.depth:
        indent = "   " * (block.depth - 1)
        body = _prefix(body, indent + (block.marker or "   "), indent + "   ")
    return _prefix(body, "> " * block.quote, "> " * block.quote)


@_safe
def to_markdown(row: dict) -> str:
    """The content as stored, ending with a newline."""
    content = _content(row)
    return content if not content or content.endswith("\n") else content + "\n"


@_safe
def to_text(row: dict) -> str:
    """Readable plain text: no Markdown markers; list items on consecutive lines."""
    out, previous_in_list = "", False
    for block in _blocks(_content(row)):
        separator = "\n" if block.depth and previous_in_list else "\n\n"
        out += (separator if out else "") + _block_text(block)
        previous_in_list = block.depth > 0
    return out + "\n" if out else ""


@_safe
def to_html_fragment(row: dict) -> str:
    """The article's body as HTML (no document around it), for the clipboard: pasted
    into WeChat's editor, Word or a CMS it keeps headings, lists and bold."""
    return _MD.render(_content(row))


@_safe
def to_html(row: dict) -> str:
    """A standalone HTML5 document; raw HTML inside the Markdown is escaped."""
    title = html.escape(str(row.get("topic") or ""))
    return (
        f'<!doctype html>\n<html lang="{_lang_tag(row)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n<style>\n{_CSS}\n</style>\n</head>\n<body>\n<article>\n"
        f"{_MD.render(_content(row))}</article>\n</body>\n</html>\n"
    )


def _add_run(paragraph: Paragraph, span: Span) -> None:
    from docx.oxml.ns import qn

    run = paragraph.add_run(span.text)  # "\n" becomes a line break
    if span.bold:
        run.bold = True
    if span.italic:
        run.italic = True
    if span.code:
        run.font.name = MONO_FONT
    run._element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), CJK_FONT)


def _paragraph_style(doc: Document, block: Block) -> str | None:
    if block.depth and block.list:
        family = "List Number" if block.list.ordered else "List Bullet"
        family = family if block.marker else "List Continue"
        name = family if block.depth == 1 else f"{family} {min(block.depth, 3)}"
    elif block.quote:
        name = "Quote" if "Quote" in doc.styles else "Intense Quote"
    else:
        return None
    return name if name in doc.styles else None


def _own_numbering(paragraph: Paragraph, start: int) -> int | None:
    """A new numbering instance for this paragraph's list style, starting at `start`,
    so each Markdown list restarts instead of continuing the previous one."""
    ppr = paragraph.style.element.pPr if paragraph.style is not None else None
    if ppr is None or ppr.numPr is None or ppr.numPr.numId is None:
        return None
    numbering = paragraph.part.numbering_part.element
    abstract_id = numbering.num_having_numId(ppr.numPr.numId.val).abstractNumId.val
    num = numbering.add_num(abstract_id)
    num.add_lvlOverride(ilvl=0).add_startOverride(start)
    return num.numId


def _add_table(doc: Document, rows: list[list[list[Token]]]) -> None:
    table = doc.add_table(rows=len(rows), cols=max(len(row) for row in rows))
    if "Table Grid" in doc.styles:
        table.style = "Table Grid"
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            for span in _spans(cell):
                _add_run(table.cell(r, c).paragraphs[0], span._replace(bold=span.bold or r == 0))


def _add_block(doc: Document, block: Block, num_ids: dict[ListState, int | None]) -> None:
    if block.kind == "rule":
        return
    if block.kind == "table":
        _add_table(doc, block.rows)
        return
    if block.kind == "heading":
        paragraph = doc.add_heading(level=min(block.level, 9))
    else:
        paragraph = doc.add_paragraph(style=_paragraph_style(doc, block))
    if block.kind == "code":
        _add_run(paragraph, Span(block.text, code=True))
    for span in _spans(block.spans):
        _add_run(paragraph, span)
    if block.list and block.list.ordered and block.marker and block.kind != "heading":
        if block.list not in num_ids:
            num_ids[block.list] = _own_numbering(paragraph, block.list.start)
        num_id = num_ids[block.list]
        if num_id is not None:
            paragraph._p.get_or_add_pPr().get_or_add_numPr().get_or_add_numId().val = num_id


def title(row: dict) -> str:
    """The article's title: its first Markdown heading, else the topic."""
    for block in _blocks(xml_safe(_content(row))):
        if block.kind == "heading":
            heading = " ".join(_plain(block.spans).split())
            if heading:
                return heading
    return " ".join(xml_safe(str(row.get("topic") or "")).split())


def _timestamp(value: Any) -> dt.datetime | None:
    try:
        stamp = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.timezone.utc)


def _set_core_properties(doc: Document, row: dict) -> None:
    """Title, author, language, keywords and dates of the article, not python-docx's."""
    def short(text: str) -> str:
        return text if len(text) <= _CORE_PROPERTY_MAX else text[:_CORE_PROPERTY_MAX - 1] + "…"

    props = doc.core_properties
    props.title = short(title(row))
    props.author = props.last_modified_by = APP_NAME
    props.language = _lang_tag(row)
    props.comments = ""  # the default template says "generated by python-docx"
    props.subject = short(" ".join(str(row.get("topic") or "").split()))
    keywords = row.get("keywords")
    if isinstance(keywords, (list, tuple)):
        props.keywords = short(", ".join(str(k) for k in keywords if k))
    created = _timestamp(row["created_at"]) if row.get("created_at") else None
    modified = _timestamp(row["updated_at"]) if row.get("updated_at") else None
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    props.created = created or now
    props.modified = modified or created or now
    props.revision = 1


@_safe
def to_docx(row: dict) -> bytes:
    """A Word document: headings, styled lists, quotes, code, tables; CJK-safe fonts."""
    import docx

    doc = docx.Document()
    _set_core_properties(doc, row)
    num_ids: dict[ListState, int | None] = {}
    for block in _blocks(_content(row)):
        _add_block(doc, block, num_ids)
    buffer = BytesIO()
    doc.save(buffer)
    return buffer.getvalue()


JSON_COLUMNS = ("checks",)  # columns stored as JSON text, exported as JSON values


@_safe
def to_json(row: dict) -> str:
    """Every column of the row, pretty-printed, non-ASCII kept readable. `brand` is the
    kit's name (or null); `checks` (banned_found, required_missing, keywords_missing,
    passed) is parsed; `unit` says what `words` counts (字 for a Chinese article, words
    for an English one). Anything a caller adds to the row (a `versions` list) is kept."""
    data = dict(row)
    if "words" in data and "unit" not in data:
        data["unit"] = article_unit(data.get("language"))
    for name in JSON_COLUMNS:
        if isinstance(data.get(name), str):
            try:
                data[name] = json.loads(data[name])
            except ValueError:
                pass  # kept as the text it is
    return json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n"


def slugify(topic: str, max_chars: int = 40) -> str:
    """Letters (CJK included), digits and hyphens from the topic; "article" if none."""
    slug = re.sub(r"[\W_]+", "-", str(topic or "").lower()).strip("-")
    return slug[:max_chars].strip("-") or "article"


def file_name(row: dict, fmt: str) -> str:
    slug = slugify(row.get("topic") or "")
    stem = slug if row.get("id") is None else f"{row['id']}-{slug}"
    return f"{stem}.{EXTENSIONS[fmt]}"


_RENDERERS: dict[str, Callable[[dict], Any]] = {
    "md": to_markdown, "txt": to_text, "html": to_html, "docx": to_docx, "json": to_json,
}


def export(row: dict, fmt: str) -> tuple[bytes, str, str]:
    """(data, mime type, file name) for one article in one of `FORMATS`."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of: {', '.join(FORMATS)}")
    row = clean_row(row)
    data = _RENDERERS[fmt](row)
    if isinstance(data, str):
        data = data.encode("utf-8")
    return data, MIME_TYPES[fmt], file_name(row, fmt)
