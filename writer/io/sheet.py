"""Spreadsheets in and out for batch writing: read a CSV or Excel file of briefs, check
every row, and write the results as CSV (UTF-8 with a BOM, so Excel shows Chinese
right), Excel, or a zip of Markdown files.

Input columns are the CLI's names (`topic`, `content_type`, `style`, `length`,
`language`, `audience`, `keywords`, `brand`) or their Chinese headers (主题, 类型, 风格,
字数, 语言, 读者, 关键词, 品牌 and a few synonyms); a brand is the name of a saved
brand kit (writer/brands.py); values may be codes or the UI's labels in either
language ("产品描述", "Product description", "product_description"). Other columns are
kept and carried to the results. A missing column takes the caller's defaults (the
Write form's values, or the CLI's). Pure Python: no Streamlit, no database.
"""
from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from writer.brands import BrandKit, find_kit
from writer.brief import CONTENT_TYPES, LANGUAGES, MAX_WORDS, MIN_WORDS, Brief, BriefError
from writer.errors import UserError
from writer.io.i18n import UI_LANGUAGES, strings

MAX_ROWS = 2000  # one batch; split bigger files
MAX_BYTES = 20 * 1024 * 1024

# Column name → field. Matched after lower-casing and dropping spaces, "_" and "-".
COLUMN_ALIASES = {
    "topic": ("topic", "title", "subject", "主题", "标题", "题目", "话题", "选题", "产品", "产品名"),
    "content_type": ("content_type", "contenttype", "type", "kind", "类型", "内容类型", "文体",
                     "体裁"),
    "style": ("style", "tone", "风格", "语气", "文风"),
    "length": ("length", "target_words", "targetwords", "words", "字数", "长度", "目标字数",
               "篇幅"),
    "language": ("language", "lang", "语言", "文章语言"),
    "audience": ("audience", "读者", "受众", "目标读者", "目标受众", "人群"),
    "keywords": ("keywords", "keyword", "关键词", "关键字", "标签"),
    "brand": ("brand", "brand_kit", "品牌", "品牌规范", "品牌名", "品牌名称"),
}
FIELDS = tuple(COLUMN_ALIASES)

# Result columns added after the input's own (`results_rows`).
RESULT_COLUMNS = ("row", "article_id", "status", "words", "target_words", "input_tokens",
                  "output_tokens", "cost", "currency", "error", "article")


class SheetError(UserError, ValueError):
    """The file cannot be used at all; the message is one line that says why."""

    key = "user_errors.sheet"


@dataclass
class Table:
    columns: list[str]  # as in the file, in order
    rows: list[dict[str, str]]  # cells by column name (strings; empty cells "")
    fields: dict[str, str] = field(default_factory=dict)  # field → the column that holds it
    overflow: set[int] = field(default_factory=set)  # rows (1-based) with cells past the header


@dataclass
class Row:
    """One data row: its brief, or why it cannot be written."""

    number: int  # 1 = the first data row (the spreadsheet's line 2)
    cells: dict[str, str]
    brief: Brief | None = None
    error: str | None = None  # a code: empty_topic, bad_length, unknown_type, extra_cells, …
    detail: str = ""  # the offending value or the validator's message

    @property
    def ok(self) -> bool:
        return self.brief is not None


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", str(name or "")).lower()


_ALIASES = {_key(alias): name for name, aliases in COLUMN_ALIASES.items() for alias in aliases}


def _labels(section: str, codes) -> dict[str, str]:
    """Every way a value may be written: the code and its label in each UI language."""
    found = {}
    for code in codes:
        found[_key(code)] = code
        for language in UI_LANGUAGES:
            label = strings(language).get(f"{section}.{code}")
            if label:
                found[_key(label)] = code
    return found


def _value_maps() -> dict[str, dict[str, str]]:
    types = _labels("content_types", CONTENT_TYPES)
    types.update({_key(k): v for k, v in {
        "博客": "blog", "文章": "blog", "blog post": "blog", "article": "blog",
        "营销": "marketing_copy", "广告": "marketing_copy", "文案": "marketing_copy",
        "marketing": "marketing_copy", "copy": "marketing_copy",
        "产品": "product_description", "商品描述": "product_description",
        "商品详情": "product_description", "product": "product_description",
        "社交": "social_post", "社媒": "social_post", "帖子": "social_post",
        "微博": "social_post", "小红书": "social_post", "朋友圈": "social_post",
        "social": "social_post", "post": "social_post"}.items()})
    languages = _labels("languages", LANGUAGES)
    languages.update({_key(k): v for k, v in {
        "chinese": "zh", "汉语": "zh", "中文简体": "zh", "简体中文": "zh", "zh-cn": "zh",
        "zh_cn": "zh", "cn": "zh", "英文": "en", "英语": "en", "english": "en",
        "en-us": "en", "en_us": "en"}.items()})
    styles = _labels("styles", ("professional", "casual", "persuasive", "storytelling"))
    return {"content_type": types, "language": languages, "style": styles}


# -- reading ------------------------------------------------------------------------

def read_table(data: bytes, file_name: str) -> Table:
    """The file's header and rows. CSV: UTF-8 (with or without BOM) or GB18030 (what
    Chinese Excel saves), comma / semicolon / tab separated. XLSX: the first sheet."""
    if len(data) > MAX_BYTES:
        raise SheetError(f"{file_name} is {len(data) // 1024 // 1024} MB; the limit is "
                         f"{MAX_BYTES // 1024 // 1024} MB")
    suffix = Path(file_name).suffix.lower()
    if suffix in (".xlsx", ".xlsm") or data[:2] == b"PK":
        header, body = _read_xlsx(data, file_name)
    elif suffix in (".csv", ".txt", ".tsv", ""):
        header, body = _read_csv(data, file_name)
    elif suffix == ".xls":
        raise SheetError(f"{file_name} is an old Excel file (.xls): save it as .xlsx or .csv")
    else:
        raise SheetError(f"{file_name}: use a .csv or .xlsx file")
    return _table(header, body, file_name)


def _read_csv(data: bytes, file_name: str) -> tuple[list[str], list[list[str]]]:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise SheetError(f"{file_name} is not UTF-8 or GBK text: save it as CSV UTF-8")
    header = next((line for line in text.splitlines() if line.strip()), "")
    delimiters = "".join(d for d in ",;\t，" if d in header)
    if not delimiters:  # one column (a list of topics): a comma is part of the topic
        lines = [[line] for line in text.splitlines()]
    else:
        try:
            dialect = csv.Sniffer().sniff(text[:4096], delimiters=delimiters)
        except csv.Error:
            dialect = csv.excel
        try:
            lines = list(csv.reader(io.StringIO(text, newline=""), dialect))
        except csv.Error as exc:
            raise SheetError(f"{file_name} is not valid CSV: {exc}") from None
    lines = [line for line in lines if any(cell.strip() for cell in line)]
    if not lines:
        raise SheetError(f"{file_name} is empty")
    return lines[0], lines[1:]


def _read_xlsx(data: bytes, file_name: str) -> tuple[list[str], list[list[str]]]:
    try:
        import openpyxl
    except ImportError:  # a dependency: requirements.txt
        raise SheetError("reading Excel files needs openpyxl: pip install -r requirements.txt") \
            from None
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # zipfile.BadZipFile, KeyError, InvalidFileException …
        raise SheetError(f"{file_name} is not a readable .xlsx file ({type(exc).__name__})") \
            from None
    try:
        sheet = book.worksheets[0]
        lines = []
        for values in sheet.iter_rows(values_only=True):
            cells = [_cell(value) for value in values]
            if any(cells):
                lines.append(cells)
            if len(lines) > MAX_ROWS + 1:
                break
    finally:
        book.close()
    if not lines:
        raise SheetError(f"{file_name} is empty")
    return lines[0], lines[1:]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Excel stores 800 as 800.0
    return str(value).strip()


def _table(header: list[str], body: list[list[str]], file_name: str) -> Table:
    columns, seen = [], set()
    for number, name in enumerate(header, 1):
        name = str(name or "").strip() or f"column_{number}"
        while name in seen:  # a repeated header stays a column of its own
            name += "_"
        seen.add(name)
        columns.append(name)
    fields: dict[str, str] = {}
    for column in columns:
        name = _ALIASES.get(_key(column))
        if name and name not in fields:
            fields[name] = column
    if "topic" not in fields:
        raise SheetError(f"{file_name} has no topic column: name one column 'topic' or '主题' "
                         f"(found: {', '.join(columns[:8])})")
    if len(body) > MAX_ROWS:
        raise SheetError(f"{file_name} has more than {MAX_ROWS} rows: split it into batches")
    rows, overflow = [], set()
    for number, line in enumerate(body, 1):
        cells = [str(cell).strip() for cell in line]
        if any(cells[len(columns):]):  # e.g. an unquoted comma inside a topic
            overflow.add(number)
        cells += [""] * (len(columns) - len(cells))
        rows.append(dict(zip(columns, cells)))
    return Table(columns, rows, fields, overflow)


# -- checking -------------------------------------------------------------------------

def briefs(table: Table, defaults: dict | None = None,
           kits: list[BrandKit] | tuple[BrandKit, ...] = ()) -> list[Row]:
    """Every row checked: a Brief, or an error code with the offending value.
    `defaults` (topic excluded) fill columns the file does not have and empty cells.
    `kits`: the saved brand kits a row's `brand` (or the default brand) may name;
    any other name makes the row invalid (`unknown_brand`)."""
    defaults = {"content_type": "blog", "style": "professional", "length": 800,
                "language": "zh", "audience": "", "keywords": "", "brand": "",
                **(defaults or {})}
    maps = _value_maps()
    result = []
    for number, cells in enumerate(table.rows, 1):
        value = {name: cells.get(column, "") for name, column in table.fields.items()}
        if number in table.overflow:
            result.append(Row(number, cells, error="extra_cells",
                              detail=str(len(table.columns))))
            continue
        result.append(check_row(number, cells, value, defaults, maps, kits))
    return result


def check_row(number: int, cells: dict, value: dict, defaults: dict,
              maps: dict | None = None, kits=()) -> Row:
    maps = maps or _value_maps()
    row = Row(number, cells)
    got = {name: (value.get(name) or "").strip() for name in FIELDS}
    topic = got["topic"]
    if not topic:
        row.error = "empty_topic"
        return row
    chosen = {}
    for name, error in (("content_type", "unknown_type"), ("language", "unknown_language")):
        chosen[name] = defaults[name]
        if got[name]:  # a code or a label in either UI language
            chosen[name] = maps[name].get(_key(got[name]))
            if chosen[name] is None:
                row.error, row.detail = error, got[name]
                return row
    content_type, language = chosen["content_type"], chosen["language"]
    length = defaults["length"]
    if got["length"]:
        text = got["length"].replace(",", "").replace("，", "")
        text = re.sub(r"\s*(字|词|words?|characters?)$", "", text, flags=re.IGNORECASE)
        try:
            number_value = float(text)
        except ValueError:
            row.error, row.detail = "bad_length", got["length"]
            return row
        if not number_value.is_integer() or not MIN_WORDS <= number_value <= MAX_WORDS:
            row.error, row.detail = "bad_length", got["length"]
            return row
        length = int(number_value)
    style = got["style"] or defaults["style"]
    style = maps["style"].get(_key(style), style)
    brand_name = got["brand"] or (defaults.get("brand") or "").strip()
    kit = find_kit(kits, brand_name) if brand_name else None
    if brand_name and kit is None:
        row.error, row.detail = "unknown_brand", brand_name
        return row
    try:
        row.brief = Brief(topic=topic, content_type=content_type, style=style,
                          target_words=int(length), language=language,
                          audience=got["audience"] or defaults["audience"],
                          keywords=got["keywords"] or defaults["keywords"], brand=kit)
    except BriefError as exc:
        row.error, row.detail = "invalid", str(exc)
    return row


def template_csv(language: str = "zh") -> bytes:
    """A file to start from: the headers in the UI's language and two example rows."""
    if language == "zh":
        header = ["主题", "类型", "风格", "字数", "语言", "读者", "关键词"]
        rows = [["便携咖啡机 MiniBrew：三分钟一杯意式浓缩", "产品描述", "说服力", "150", "中文",
                 "上班族", "便携, 意式浓缩"],
                ["双十一咖啡节活动预告", "社交媒体帖子", "轻松", "100", "中文", "年轻白领",
                 "双十一, 优惠"]]
    else:
        header = ["topic", "content_type", "style", "length", "language", "audience",
                  "keywords"]
        rows = [["MiniBrew portable espresso maker: a shot in three minutes",
                 "product_description", "persuasive", "150", "en", "commuters",
                 "portable, espresso"],
                ["Singles' Day coffee festival teaser", "social_post", "casual", "100", "en",
                 "young professionals", "sale, coffee"]]
    return to_csv(header, rows)


# -- writing ------------------------------------------------------------------------

def to_csv(header: list[str], rows: list[list]) -> bytes:
    """CSV as Excel wants it: UTF-8 with a BOM, CRLF line ends."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([_csv_safe(name) for name in header])
    for row in rows:
        writer.writerow([_csv_safe(value) for value in row])
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")


def to_xlsx(header: list[str], rows: list[list], sheet_name: str = "results") -> bytes:
    import openpyxl
    from openpyxl.styles import Alignment, Font

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = sheet_name[:31]
    sheet.append([_xlsx_safe(name) for name in header])  # headers come from the upload too
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append([_xlsx_safe(value) for value in row])
    sheet.freeze_panes = "A2"
    for index, name in enumerate(header, 1):  # readable widths; long text wraps
        letter = openpyxl.utils.get_column_letter(index)
        longest = max([len(str(name))] + [len(str(r[index - 1] or "")[:80]) for r in rows[:200]])
        sheet.column_dimensions[letter].width = min(60, max(8, longest + 2))
        if longest > 60:
            for cell in sheet[letter][1:]:
                cell.alignment = Alignment(wrap_text=True, vertical="top")
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


FORMULA_STARTS = ("=", "+", "@")  # what makes Excel evaluate a cell ("-" too, but lists)
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _csv_safe(value):
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in FORMULA_STARTS:
        return "'" + value  # a cell is never run as a formula
    return value


def _xlsx_safe(value):
    if isinstance(value, str):
        value = _ILLEGAL.sub("", value)
        if value[:1] in FORMULA_STARTS:
            value = "'" + value  # a topic is never run as a formula
        return value[:32767]
    return value


def to_zip(files: list[tuple[str, str]]) -> bytes:
    """A zip of text files (name, text), UTF-8."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files:
            archive.writestr(name, text.encode("utf-8"))
    return out.getvalue()


def dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False)
