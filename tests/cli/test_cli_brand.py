"""`python -m writer brand …`, `write --brand` and `batch --brand` through a real
subprocess, against the loopback provider."""
from __future__ import annotations

import csv
import io
import json

from fake_openai import Reply
from test_cli import cli, rows
from writer import brands

KITS = """
[[brands]]
name = "MiniBrew"
voice = \"\"\"
真诚、利落，像一位懂咖啡的朋友。
少用感叹号。\"\"\"
audience = "上班族"
do = ["多用短句"]
dont = ["不要贬低竞品"]
banned_words = ["最好", "best"]
required_terms = ["MiniBrew", "三分钟一杯"]
facts = "萃取压力 15 bar"
samples = ["早上七点，MiniBrew 已经把浓缩递到你手里。"]

[[brands]]
name = "TeaTime 茶"
banned_words = ["第一"]
"""


def _import(tmp_path, env, text=KITS, name="kits.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return cli("brand", "import", str(path), env=env)


def test_import_list_and_export_round_trip(env, tmp_path):
    result = _import(tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["imported brand kit «MiniBrew»",
                                          "imported brand kit «TeaTime 茶»"]
    assert result.stdout == ""
    listed = cli("brand", "list", env=env)
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("MiniBrew") and "2 banned" in lines[0]
    assert "TeaTime 茶" in lines[1] and "2 brand kits" in listed.stderr
    as_json = [json.loads(line) for line in cli("brand", "list", "--json", env=env).stdout
               .splitlines()]
    assert [k["name"] for k in as_json] == ["MiniBrew", "TeaTime 茶"]
    assert as_json[0]["required_terms"] == ["MiniBrew", "三分钟一杯"] and as_json[0]["id"]
    exported = cli("brand", "export", "MiniBrew", env=env)
    assert exported.returncode == 0, exported.stderr
    (kit,) = brands.from_toml(exported.stdout)
    assert kit.voice == "真诚、利落，像一位懂咖啡的朋友。\n少用感叹号。"
    assert kit.banned_words == ("最好", "best") and kit.samples[0].startswith("早上七点")
    # --out writes the file; importing it again updates the kit, nothing is added
    out = tmp_path / "minibrew.toml"
    saved = cli("brand", "export", "minibrew", "--out", str(out), env=env)  # any case
    assert saved.returncode == 0 and "saved brand kit «MiniBrew»" in saved.stderr
    assert brands.from_toml(out.read_text(encoding="utf-8")) == [kit]
    again = cli("brand", "import", "--replace", str(out), env=env)
    assert again.returncode == 0 and again.stderr.strip() == "replaced brand kit «MiniBrew»"
    assert len(cli("brand", "list", "--json", env=env).stdout.splitlines()) == 2


def test_import_refuses_to_replace_a_saved_kit_without_replace(env, tmp_path):
    assert _import(tmp_path, env, 'name = "MiniBrew"\nvoice = "旧的"\n', "old.toml").returncode == 0
    refused = _import(tmp_path, env)  # MiniBrew is saved; TeaTime 茶 is new
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.strip() == ("error: kits.toml: brand kit «MiniBrew» already saved; "
                                      "nothing imported. Add --replace to replace it")
    listed = [json.loads(line) for line in cli("brand", "list", "--json", env=env).stdout
              .splitlines()]
    assert [(k["name"], k["voice"]) for k in listed] == [("MiniBrew", "旧的")]  # untouched
    replaced = cli("brand", "import", "--replace", str(tmp_path / "kits.toml"), env=env)
    assert replaced.returncode == 0, replaced.stderr
    assert replaced.stderr.splitlines() == ["replaced brand kit «MiniBrew»",
                                            "imported brand kit «TeaTime 茶»"]
    listed = [json.loads(line) for line in cli("brand", "list", "--json", env=env).stdout
              .splitlines()]
    assert listed[0]["voice"].startswith("真诚") and len(listed) == 2


def test_bad_files_and_unknown_names_are_one_line_errors(env, tmp_path):
    bad = _import(tmp_path, env, 'name = "x"\ntone = "warm"\n', "bad.toml")
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("error: bad.toml: the kit («x»): unknown key 'tone'; use: "
                                  "name, voice, audience, do, dont, banned_words, "
                                  "required_terms, facts, samples")
    broken = _import(tmp_path, env, 'name = "x', "broken.toml")
    assert broken.returncode == 2 and "not valid TOML" in broken.stderr
    assert len(broken.stderr.strip().splitlines()) == 1
    missing = cli("brand", "import", str(tmp_path / "nope.toml"), env=env)
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    none = cli("brand", "export", "nope", env=env)
    assert none.returncode == 2 and none.stderr.strip() == (
        "error: there is no brand kit «nope»; none saved yet: python -m writer brand import "
        "FILE.toml")
    assert cli("brand", env=env).returncode == 2  # a subcommand is required
    assert cli("brand", "list", env=env).stdout == ""


def test_write_with_a_brand_reports_the_check_and_show_json_has_it(env, fake, tmp_path):
    assert _import(tmp_path, env).returncode == 0
    article = "# MiniBrew\n\nMiniBrew is the best. Best of all, it is small.\n"
    fake.queue(Reply(text=article, chunk_chars=6))
    result = cli("write", "--topic", "新品", "--language", "en", "--length", "100",
                 "--keywords", "small, espresso", "--brand", "MiniBrew", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == article.strip()
    first = article.index("best")
    second = article.index("Best")
    assert f"check: banned word «best» at characters {first}, {second}" in result.stderr
    assert "check: required term missing: «三分钟一杯»" in result.stderr
    assert "check: keyword missing: «espresso»" in result.stderr
    assert "small" not in result.stderr.split("check:", 1)[1]
    system = fake.requests[0]["messages"][0]["content"]
    assert "MiniBrew" in system and "best" in system and "萃取压力 15 bar" in system
    (row,) = rows(env)
    shown = cli("show", str(row["id"]), "--format", "json", env=env)
    data = json.loads(shown.stdout)
    assert data["brand"] == "MiniBrew"
    assert data["checks"]["banned_found"] == [
        {"term": "best", "start": first, "end": first + 4},
        {"term": "best", "start": second, "end": second + 4}]
    assert data["checks"]["required_missing"] == ["三分钟一杯"]
    assert data["checks"]["keywords_missing"] == ["espresso"]
    assert data["checks"]["passed"] is False


def test_write_that_passes_prints_no_check_lines(env, fake, tmp_path):
    assert _import(tmp_path, env).returncode == 0
    fake.queue(Reply(text="MiniBrew：三分钟一杯。"))
    result = cli("write", "--topic", "新品", "--brand", "MiniBrew", env=env)
    assert result.returncode == 0 and "check:" not in result.stderr
    data = json.loads(cli("show", "1", "--format", "json", env=env).stdout)
    assert data["brand"] == "MiniBrew" and data["checks"]["passed"] is True
    # without a kit: brand is null, the keyword check is still there
    fake.queue(Reply(text="plain"))
    assert cli("write", "--topic", "x", env=env).returncode == 0
    data = json.loads(cli("show", "2", "--format", "json", env=env).stdout)
    assert data["brand"] is None and data["checks"]["banned_found"] == []


def test_unknown_brand_exits_2_with_one_line_listing_the_known(env, fake, tmp_path):
    assert _import(tmp_path, env).returncode == 0
    result = cli("write", "--topic", "x", "--brand", "Coffee Co", env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: there is no brand kit «Coffee Co»; known: MiniBrew, TeaTime 茶")
    assert result.stdout == "" and rows(env) == [] and fake.requests == []


def test_batch_brand_column_and_default(env, fake, tmp_path):
    assert _import(tmp_path, env).returncode == 0
    sheet = tmp_path / "rows.csv"
    sheet.write_text("主题,品牌\n咖啡机,MiniBrew\n茶包,teatime 茶\n杯子,\n坏行,NoSuch\n",
                     encoding="utf-8")
    fake.default = Reply(text="MiniBrew 是最好的。")
    result = cli("batch", str(sheet), "--brand", "TeaTime 茶", "--yes", "--length", "50",
                 "--no-length-control", env=env)
    assert result.returncode == 0, result.stderr
    assert "row 4 (line 5) skipped: unknown brand (NoSuch)" in result.stderr
    by_topic = {r["topic"]: r for r in rows(env)}
    assert set(by_topic) == {"咖啡机", "茶包", "杯子"}
    assert by_topic["咖啡机"]["brand"] == "MiniBrew"
    assert by_topic["茶包"]["brand"] == "TeaTime 茶"  # a cell's name, any case
    assert by_topic["杯子"]["brand"] == "TeaTime 茶"  # an empty cell: the --brand default
    assert json.loads(by_topic["咖啡机"]["checks"])["banned_found"][0]["term"] == "最好"
    assert json.loads(by_topic["杯子"]["checks"])["passed"] is True  # TeaTime bans 第一 only
    systems = [r["messages"][0]["content"] for r in fake.requests]
    assert sum("Write for the brand MiniBrew" in s for s in systems) == 1
    assert sum("Write for the brand TeaTime 茶" in s for s in systems) == 2
    results = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["status"] for r in results] == ["completed", "completed", "completed", "invalid"]
    assert results[3]["error"] == "unknown_brand: NoSuch" and results[0]["品牌"] == "MiniBrew"
    unknown = cli("batch", str(sheet), "--brand", "nope", "--yes", env=env)
    assert unknown.returncode == 2 and "no brand kit «nope»; known: MiniBrew" in unknown.stderr
