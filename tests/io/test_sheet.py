"""Spreadsheets in and out for batch writing (writer/io/sheet.py): no provider, no database."""
from __future__ import annotations

import csv
import io
import zipfile

import openpyxl
import pytest

from writer.io.sheet import (
    RESULT_COLUMNS,
    SheetError,
    briefs,
    read_table,
    template_csv,
    to_csv,
    to_xlsx,
    to_zip,
)

BOM = b"\xef\xbb\xbf"


def xlsx(*lines) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    for line in lines:
        sheet.append(list(line))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def checked(data: bytes, name: str = "briefs.csv", defaults: dict | None = None):
    table = read_table(data, name)
    return table, briefs(table, defaults)


# -- reading ------------------------------------------------------------------------

def test_utf8_csv_with_bom_and_chinese_headers_and_labels():
    text = ("主题,类型,风格,字数,语言,读者,关键词\n"
            "便携咖啡机,产品描述,说服力,150,中文,上班族,\"便携, 意式浓缩\"\n"
            "Coffee festival,社交媒体帖子,轻松,100,英文,students,sale\n")
    table, rows = checked(BOM + text.encode("utf-8"))
    assert table.columns[0] == "主题"  # the BOM is not part of the first header
    assert table.fields == {"topic": "主题", "content_type": "类型", "style": "风格",
                            "length": "字数", "language": "语言", "audience": "读者",
                            "keywords": "关键词"}
    first, second = rows
    assert first.ok and first.number == 1
    assert first.brief.topic == "便携咖啡机"
    assert first.brief.content_type == "product_description"
    assert first.brief.style == "persuasive"
    assert first.brief.target_words == 150 and first.brief.language == "zh"
    assert first.brief.audience == "上班族"
    assert first.brief.keywords == ("便携", "意式浓缩")
    assert second.brief.content_type == "social_post" and second.brief.style == "casual"
    assert second.brief.language == "en"  # "英文" is English


def test_english_labels_and_codes_are_accepted_too():
    text = ("Topic,Content Type,Style,Words,Lang\n"
            "A,Product description,Persuasive,120,English\n"
            "B,marketing_copy,storytelling,90,zh\n"
            "C,blog post,my own voice,60,Chinese\n")
    _, rows = checked(text.encode())
    assert [r.brief.content_type for r in rows] == ["product_description", "marketing_copy",
                                                    "blog"]
    assert [r.brief.language for r in rows] == ["en", "zh", "zh"]
    assert [r.brief.style for r in rows] == ["persuasive", "storytelling", "my own voice"]
    assert [r.brief.target_words for r in rows] == [120, 90, 60]


def test_gb18030_csv_as_chinese_excel_saves_it():
    text = "主题,字数,语言\r\n秋季新品发布,200,中文\r\n双十一预告,100,中文\r\n"
    data = text.encode("gb18030")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")  # really not UTF-8
    table, rows = checked(data)
    assert table.columns == ["主题", "字数", "语言"]
    assert [r.brief.topic for r in rows] == ["秋季新品发布", "双十一预告"]
    assert [r.brief.target_words for r in rows] == [200, 100]


def test_semicolon_and_tab_separated_files_are_sniffed():
    semi = b"topic;length;notes\nFirst, with a comma;100;x, y\nSecond;200;z\n"
    table, rows = checked(semi)
    assert table.columns == ["topic", "length", "notes"]
    assert [r.brief.topic for r in rows] == ["First, with a comma", "Second"]
    assert table.rows[0]["notes"] == "x, y"
    tab = b"topic\tlength\nA\t300\nB\t400\n"
    _, rows = checked(tab, "briefs.tsv")
    assert [(r.brief.topic, r.brief.target_words) for r in rows] == [("A", 300), ("B", 400)]


def test_xlsx_round_trip_numbers_come_back_as_integers():
    data = xlsx(["主题", "字数", "类型", "备注"],
                ["新品上市", 800.0, "产品描述", "keep me"],
                ["Second", 120, "blog", None],
                [None, None, None, None],  # an empty line is skipped
                ["Third", "1,500", "社交媒体帖子", 3.5])
    table, rows = checked(data, "briefs.xlsx")
    assert table.columns == ["主题", "字数", "类型", "备注"]
    assert table.rows[0]["字数"] == "800"  # not "800.0"
    assert rows[0].brief.target_words == 800 and rows[0].brief.content_type == "product_description"
    assert table.rows[0]["备注"] == "keep me" and table.rows[1]["备注"] == ""
    assert rows[1].brief.target_words == 120
    assert len(rows) == 3
    assert rows[2].brief.target_words == 1500 and table.rows[2]["备注"] == "3.5"


def test_unknown_columns_are_kept_in_order():
    text = b"sku,topic,owner,length\nA-1,Kettle,ann,100\nB-2,Teapot,bob,\n"
    table, rows = checked(text)
    assert table.columns == ["sku", "topic", "owner", "length"]
    assert rows[0].cells == {"sku": "A-1", "topic": "Kettle", "owner": "ann", "length": "100"}
    assert rows[1].cells["owner"] == "bob"


def test_missing_columns_and_empty_cells_take_the_defaults():
    defaults = {"content_type": "social_post", "style": "casual", "length": 75,
                "language": "en", "audience": "cyclists"}
    _, rows = checked(b"topic,length\nBikes,\nHelmets,300\n", defaults=defaults)
    first, second = rows
    assert first.brief.target_words == 75  # empty cell: the default
    assert second.brief.target_words == 300
    for row in rows:
        assert row.brief.content_type == "social_post" and row.brief.style == "casual"
        assert row.brief.language == "en" and row.brief.audience == "cyclists"
    _, (plain,) = checked(b"topic\nNo defaults given\n")
    assert (plain.brief.content_type, plain.brief.language, plain.brief.target_words) == \
        ("blog", "zh", 800)


@pytest.mark.parametrize("line, code, detail", [
    (",blog,100,en", "empty_topic", ""),
    ("   ,blog,100,en", "empty_topic", ""),
    ("T,blog,lots,en", "bad_length", "lots"),
    ("T,blog,49,en", "bad_length", "49"),
    ("T,blog,20001,en", "bad_length", "20001"),
    ("T,blog,120.5,en", "bad_length", "120.5"),
    ("T,poem,100,en", "unknown_type", "poem"),
    ("T,blog,100,fr", "unknown_language", "fr"),
    ("T" * 501 + ",blog,100,en", "invalid", "topic is 501 characters"),
])
def test_each_error_code(line, code, detail):
    _, (row,) = checked(("topic,type,length,language\n" + line + "\n").encode())
    assert not row.ok and row.brief is None
    assert row.error == code
    assert detail in row.detail if detail else row.detail == ""


def test_lengths_with_units_and_thousands_separators():
    _, rows = checked("topic,字数\nA,\"1,200\"\nB,300字\nC,250 words\n".encode())
    assert [r.brief.target_words for r in rows] == [1200, 300, 250]


def test_good_rows_are_checked_independently_of_bad_ones():
    _, rows = checked(b"topic,length\nGood,100\n,100\nAlso good,10\nFine,60\n")
    assert [(r.number, r.ok, r.error) for r in rows] == [
        (1, True, None), (2, False, "empty_topic"), (3, False, "bad_length"), (4, True, None)]


@pytest.mark.parametrize("data, name, message", [
    (b"title_x,length\nA,100\n", "a.csv", "no topic column"),
    (b"", "a.csv", "empty"),
    (b"PK\x03\x04 not really a zip", "a.xlsx", "not a readable .xlsx"),
    (b"whatever", "a.xls", ".xls"),
    (b"whatever", "a.pdf", "use a .csv or .xlsx"),
    (b"topic\n\xff\xff\n", "a.csv", "not UTF-8 or GBK"),
    (b"\n \n,,\n", "a.csv", "empty"),
])
def test_unusable_files_raise_sheet_error(data, name, message):
    with pytest.raises(SheetError) as caught:
        read_table(data, name)
    text = str(caught.value)
    assert "\n" not in text and name in text and message in text


def test_no_topic_column_names_the_columns_found():
    with pytest.raises(SheetError, match=r"no topic column.*found: sku, length"):
        read_table(b"sku,length\nA,100\n", "briefs.csv")


def test_template_reads_back_without_errors():
    for language in ("zh", "en"):
        table, rows = checked(template_csv(language), f"template-{language}.csv")
        assert template_csv(language).startswith(BOM)
        assert len(rows) == 2 and all(r.ok for r in rows), [r.error for r in rows]
        assert {r.brief.content_type for r in rows} == {"product_description", "social_post"}


# -- writing ------------------------------------------------------------------------

def test_to_csv_starts_with_a_bom_and_guards_formulas():
    header = ["topic", "note", *RESULT_COLUMNS]
    values = ["=cmd|' /C calc'!A0", "+1+A1", "@SUM(A1)", "- a list item", "中文，逗号", None, 3,
              1.5, "line one\nline two", "-5", "-5 is not a list item"]
    data = to_csv(header, [values[:len(header)] + [""] * (len(header) - len(values))])
    assert data.startswith(BOM)
    text = data[len(BOM):].decode("utf-8")
    assert "\r\n" in text
    (head, row) = list(csv.reader(io.StringIO(text, newline="")))
    assert head == header
    assert row[0] == "'=cmd|' /C calc'!A0"  # never evaluated by Excel
    assert row[1] == "'+1+A1" and row[2] == "'@SUM(A1)"
    assert row[3] == "- a list item"  # a Markdown list item is left alone
    assert row[9] == "'-5" and row[10] == "'-5 is not a list item"  # a number as text too
    assert row[4] == "中文，逗号" and row[5] == "" and row[6] == "3" and row[7] == "1.5"
    assert row[8] == "line one\nline two"
    # The file reads back as a sheet (Excel's own round trip): the header survives the BOM.
    assert read_table(data, "results.csv").columns[0] == "topic"


def test_to_xlsx_is_readable_with_openpyxl_and_guards_formulas():
    header = ["主题", "status", "words", "article"]
    rows = [["=HYPERLINK(\"http://x\")", "completed", 55, "# Title\n\nText \x07with bell."],
            ["第二行", "failed", None, ""]]
    book = openpyxl.load_workbook(io.BytesIO(to_xlsx(header, rows)))
    sheet = book.active
    values = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert values[0] == header
    assert values[1][0] == "'=HYPERLINK(\"http://x\")"
    assert sheet["A2"].data_type == "s"  # a string, not a formula
    assert values[1][1:3] == ["completed", 55]
    assert values[1][3] == "# Title\n\nText with bell."  # control characters dropped
    assert values[2][:3] == ["第二行", "failed", None]
    assert sheet.freeze_panes == "A2"


def test_to_zip_holds_utf8_text_files():
    data = to_zip([("0001-a.md", "# 标题\n\n正文"), ("0002-b.md", "text")])
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist() == ["0001-a.md", "0002-b.md"]
        assert archive.read("0001-a.md").decode("utf-8") == "# 标题\n\n正文"


def test_a_one_column_file_keeps_commas_in_its_topics():
    table, rows = checked(b"topic\nHello, world\nTea, coffee and cake\n", "topics.txt")
    assert [r.brief.topic for r in rows] == ["Hello, world", "Tea, coffee and cake"]


def test_header_cells_are_guarded_too():
    header = ["=HYPERLINK(\"http://x\",\"y\")", "topic"]
    text = to_csv(header, [["a", "b"]])[len(BOM):].decode("utf-8")
    first = next(csv.reader(io.StringIO(text)))
    assert first[0].startswith("'=HYPERLINK") and first[1] == "topic"
    sheet = openpyxl.load_workbook(io.BytesIO(to_xlsx(header, [["a", "b"]]))).active
    assert sheet["A1"].data_type == "s"


# -- brand kits ----------------------------------------------------------------------

def test_brand_column_names_a_saved_kit_and_the_default_fills_empty_cells():
    from writer.brands import BrandKit

    kits = [BrandKit(name="MiniBrew", banned_words=("最好",)), BrandKit(name="TeaTime 茶")]
    text = "主题,品牌\n咖啡机,MiniBrew\n茶包,teatime  茶\n杯子,\n坏行,NoSuch\n"
    table = read_table(text.encode("utf-8"), "briefs.csv")
    assert table.fields["brand"] == "品牌"
    rows = briefs(table, {"brand": "MiniBrew"}, kits)
    assert [r.brief.brand.name if r.ok else None for r in rows] == [
        "MiniBrew", "TeaTime 茶", "MiniBrew", None]
    assert rows[0].brief.brand.banned_words == ("最好",)  # the kit itself, not only its name
    assert (rows[3].error, rows[3].detail) == ("unknown_brand", "NoSuch")
    # without a default an empty cell means no kit; without kits any name is unknown
    assert briefs(table, None, kits)[2].brief.brand is None
    assert [r.error for r in briefs(table)] == ["unknown_brand", "unknown_brand", None,
                                                "unknown_brand"]
    # an English header works too, and the error is localized for the Batch page
    assert read_table(b"topic,brand\nx,y\n", "b.csv").fields["brand"] == "brand"
    from writer.io.i18n import Translator

    assert "NoSuch" in Translator("zh")("batch.error_unknown_brand", value="NoSuch")
    assert "NoSuch" in Translator("en")("batch.error_unknown_brand", value="NoSuch")
