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
MB = 1024 * 1024
MAX_UPLOAD_MB = 20  # the upload limit; .streamlit/config.toml server.maxUploadSize is the same
MAX_BYTES = MAX_UPLOAD_MB * MB
# What one file may unpack to before it is loaded (a zip bomb is refused from its listing):
# an .xlsx's members in total and each, or a CSV's text (as UTF-8).
MAX_UNPACKED_MB = 50
MAX_ZIP_MEMBERS = 1000
MAX_ZIP_RATIO = 200  # uncompressed : compressed, for a member over 1 MB
ENCODINGS = ("UTF-8", "GBK")  # a CSV's lines; GBK is read as GB18030, its superset
# C0 controls but tab and line ends, and DEL: removed from every cell read or written
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

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

# Result columns added after the input's own (`results_rows`). `unit` is what a row's
# `words` and `target_words` count: 字 for a Chinese article, words for an English one.
RESULT_COLUMNS = ("row", "article_id", "status", "words", "target_words", "unit", "input_tokens",
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
    mixed: dict[int, str] = field(default_factory=dict)  # rows in the file's other encoding


@dataclass
class Row:
    """One data row: its brief, or why it cannot be written."""

    number: int  # 1 = the first data row (the spreadsheet's line 2)
    cells: dict[str, str]
    brief: Brief | None = None
    error: str | None = None  # a code: empty_topic, bad_length, extra_cells, mixed_encoding, …
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
    Chinese Excel saves), comma / semicolon / tab separated. XLSX: the first sheet.
    Sizes are checked before anything is unpacked (`MAX_BYTES`, `MAX_UNPACKED_MB`)."""
    if len(data) > MAX_BYTES:
        raise SheetError(f"{file_name} is {_mb(len(data))} MB; the limit is {MAX_UPLOAD_MB} MB",
                         key="user_errors.sheet_too_large", file=file_name,
                         size=_mb(len(data)), limit=MAX_UPLOAD_MB)
    suffix = Path(file_name).suffix.lower()
    mixed: dict[int, str] = {}
    if suffix in (".xlsx", ".xlsm") or data[:2] == b"PK":
        _check_zip(data, file_name)
        header, body = _read_xlsx(data, file_name)
    elif suffix in (".csv", ".txt", ".tsv", ""):
        header, body, mixed = _read_csv(data, file_name)
    elif suffix == ".xls":
        raise SheetError(f"{file_name} is an old Excel file (.xls): save it as .xlsx or .csv")
    else:
        raise SheetError(f"{file_name}: use a .csv or .xlsx file")
    return _table(header, body, file_name, mixed)


def _mb(size: int) -> int:
    return -(-size // MB)  # rounded up: "1 MB" is never more than one


def _too_big(file_name: str, size: int, where: str = "") -> SheetError:
    return SheetError(f"{file_name}{where} unpacks to {_mb(size)} MB; the limit is "
                      f"{MAX_UNPACKED_MB} MB", key="user_errors.sheet_unpacked_too_large",
                      file=file_name, size=_mb(size), limit=MAX_UNPACKED_MB)


def _check_zip(data: bytes, file_name: str) -> None:
    """Refuse an .xlsx whose listing promises too much (members, bytes, ratio): zipfile
    never inflates a member past its listed size, so the listing bounds what is read."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise SheetError(f"{file_name} is not a readable .xlsx file ({type(exc).__name__})") \
            from None
    if len(members) > MAX_ZIP_MEMBERS:
        raise SheetError(f"{file_name} holds {len(members)} files; the limit is {MAX_ZIP_MEMBERS}",
                         key="user_errors.sheet_zip_members", file=file_name,
                         count=len(members), limit=MAX_ZIP_MEMBERS)
    limit, total = MAX_UNPACKED_MB * MB, 0
    for info in members:
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise SheetError(f"{file_name} is not a readable .xlsx file ({info.filename})")
        if info.file_size > limit:
            raise _too_big(file_name, info.file_size, f" ({info.filename})")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > MB and ratio > MAX_ZIP_RATIO:
            raise SheetError(f"{file_name}: {info.filename} is compressed {ratio:.0f}:1; the "
                             f"limit is {MAX_ZIP_RATIO}:1", key="user_errors.sheet_zip_ratio",
                             file=file_name, ratio=round(ratio), limit=MAX_ZIP_RATIO)
        total += info.file_size
        if total > limit:
            raise _too_big(file_name, total)


def _decode(data: bytes, file_name: str) -> tuple[str, dict[int, str]]:
    """The text, and the lines (0-based) in the file's less common encoding: {line: "GBK"}.
    Not all UTF-8: each line is read in its own encoding, the odd ones named, never read
    as the other (UTF-8 read as GBK is a garbled topic: "便携" becomes "渚挎惡")."""
    data = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    if len(data) > MAX_UNPACKED_MB * MB:  # that much text already
        raise _too_big(file_name, len(data))
    try:
        return data.decode("utf-8"), {}
    except UnicodeDecodeError:
        pass
    out, size, kinds = io.StringIO(), 0, {name: [] for name in ENCODINGS}
    for number, line in enumerate(data.splitlines(keepends=True)):  # "\n" is never inside
        try:  # a GBK or UTF-8 character, so a line is in one encoding or the other
            text = line.decode("utf-8")
            if not line.isascii():
                kinds["UTF-8"].append(number)
        except UnicodeDecodeError:
            try:
                text = line.decode("gb18030")
            except UnicodeDecodeError:
                raise SheetError(f"{file_name} is not UTF-8 or GBK text (line {number + 1}): "
                                 "save it as CSV UTF-8") from None
            kinds["GBK"].append(number)
        size += len(text.encode("utf-8"))
        if size > MAX_UNPACKED_MB * MB:
            raise _too_big(file_name, size)
        out.write(text)
    utf8, gbk = len(kinds["UTF-8"]), len(kinds["GBK"])
    odd = ["UTF-8"] if gbk > utf8 else ["GBK"] if utf8 > gbk else list(ENCODINGS)  # a tie: both
    return out.getvalue(), {number: name for name in odd for number in kinds[name]}


def _read_csv(data: bytes, file_name: str) -> tuple[list[str], list[list[str]], dict[int, str]]:
    """Header, rows, and the rows (1-based) with a line in the file's other encoding."""
    text, odd_lines = _decode(data, file_name)
    header = next((line for line in io.StringIO(text, newline="") if line.strip()), "")
    delimiters = "".join(d for d in ",;\t，" if d in header)
    records = []  # (cells, first line, last line): lines as csv counts them (\r, \n, \r\n)
    try:
        if not delimiters:  # one column (a list of topics): a comma is part of the topic
            for number, line in enumerate(io.StringIO(text, newline="")):
                records.append(([line.rstrip("\r\n")], number, number))
        else:
            try:
                dialect = csv.Sniffer().sniff(text[:4096], delimiters=delimiters)
            except csv.Error:
                dialect = csv.excel
            reader, start = csv.reader(io.StringIO(text, newline=""), dialect), 0
            for cells in reader:
                records.append((cells, start, reader.line_num - 1))
                start = reader.line_num
    except csv.Error as exc:
        raise SheetError(f"{file_name} is not valid CSV: {exc}") from None
    records = [r for r in records if any(cell.strip() for cell in r[0])]
    if not records:
        raise SheetError(f"{file_name} is empty")
    mixed = {}
    for number, (_, first, last) in enumerate(records[1:], 1):
        found = [odd_lines[line] for line in range(first, last + 1) if line in odd_lines]
        if found:
            mixed[number] = found[0]
    return records[0][0], [r[0] for r in records[1:]], mixed


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


def _text(value) -> str:
    """A cell as text: no NUL or other control character (a terminal's escape sequence)."""
    return CONTROL_CHARACTERS.sub("", str(value)).strip()


def _table(header: list[str], body: list[list[str]], file_name: str,
           mixed: dict[int, str] | None = None) -> Table:
    columns, seen = [], set()
    for number, name in enumerate(header, 1):
        name = _text(name or "") or f"column_{number}"
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
        cells = [_text(cell) for cell in line]
        if any(cells[len(columns):]):  # e.g. an unquoted comma inside a topic
            overflow.add(number)
        cells += [""] * (len(columns) - len(cells))
        rows.append(dict(zip(columns, cells)))
    return Table(columns, rows, fields, overflow, dict(mixed or {}))


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
        if number in table.mixed:  # its cells may be garbled: never written, always named
            result.append(Row(number, cells, error="mixed_encoding", detail=table.mixed[number]))
            continue
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
    """CSV as Excel wants it: UTF-8 with a BOM, CRLF line ends; every cell `safe_cell`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([safe_cell(name) for name in header])
    for row in rows:
        writer.writerow([safe_cell(value) for value in row])
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


# What makes a spreadsheet run a cell as a formula (OWASP, "CSV injection"): its first
# character, or the first after spaces, and the full-width forms an East Asian Excel reads
# as the same. A leading tab or carriage return is always suspect.
FORMULA_STARTS = ("=", "+", "-", "@", "＝", "＋", "－", "＠")
_LEADING = re.compile(r"^[\s\x00-\x1f\x7f]+")
# A Markdown list item ("- text"): words after "- ", no call "(" and no DDE "|" anywhere.
_LIST_ITEM = re.compile(r"- [^\s\d=+\-@＝＋－＠\"'(][^(|]*", re.DOTALL)


def safe_cell(value):
    """A cell no spreadsheet runs as a formula: the one guard of every CSV and xlsx the
    app writes (batch results, the template, the usage report). A text that could start
    a formula gets a leading "'" (a signed number as text, "-5", too); a number and a
    Markdown list item ("- text") stay as they are; None is an empty cell."""
    if value is None:
        return ""
    if not isinstance(value, str):
        return value
    stripped = _LEADING.sub("", value)
    if value[:1] in ("\t", "\r") or (
            stripped[:1] in FORMULA_STARTS and not _LIST_ITEM.fullmatch(stripped)):
        return "'" + value
    return value


def _xlsx_safe(value):
    if isinstance(value, str):
        return safe_cell(CONTROL_CHARACTERS.sub("", value))[:32767]
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
