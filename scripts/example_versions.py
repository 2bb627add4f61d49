"""A worked example of brand kits, variants and revisions, through the real CLI
against the loopback fake provider (tests/fake_openai.py) and a scratch database:
brand import → write --brand --variants 3 → choose → revise one section → versions →
show --format json. Prints each command with its stdout and stderr.

    .venv/bin/python scripts/example_versions.py
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from fake_openai import FakeOpenAI, Reply  # noqa: E402

KIT = """name = "MiniBrew 咖啡"
voice = "温暖、干脆，像懂咖啡的朋友"
audience = "一线城市上班族"
do = ["先讲好处再讲参数"]
dont = ["夸大功效"]
banned_words = ["最好", "第一"]
required_terms = ["MiniBrew Pro"]
facts = "萃取 30 秒；研磨噪音 45 分贝；一键清洗"
samples = ["清晨的第一杯，交给 MiniBrew。"]
"""
tmp = tempfile.mkdtemp()
kit_path = Path(tmp) / "kit.toml"
kit_path.write_text(KIT, encoding="utf-8")
V = ["# 清晨三十秒\n\n这是最好的咖啡机：MiniBrew Pro 三十秒萃取。\n\n## 安静\n\n45 分贝，不吵醒家人。\n",
     "# 安静的早晨\n\nMiniBrew Pro 研磨只有 45 分贝。\n\n## 一键清洗\n\n用完按一下就干净。\n",
     "# 上班族的咖啡角\n\n三十秒一杯，MiniBrew 让早晨从容。\n\n## 省心\n\n一键清洗。\n"]
with FakeOpenAI() as fake:
    env = {**os.environ, "OPENAI_API_KEY": "sk-demo", "OPENAI_BASE_URL": fake.base_url,
           "WRITER_MODEL": "gpt-4o-mini", "WRITER_DB": f"{tmp}/writer.db", "WRITER_NO_DOTENV": "1"}
    def run(*args):
        print("$ python -m writer " + " ".join(a if " " not in a else repr(a) for a in args))
        done = subprocess.run([sys.executable, "-m", "writer", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True)
        out = done.stdout.rstrip()
        if out:
            print(out)
        for line in done.stderr.rstrip().splitlines():
            print("  [stderr] " + line)
        print(f"  (exit {done.returncode})\n")
        return done
    run("brand", "import", str(kit_path))
    fake.queue(*[Reply(text=t, usage=(420, 80)) for t in V])
    run("write", "--topic", "MiniBrew Pro 新品上市", "--type", "social_post", "--length", "60",
        "--keywords", "一键清洗", "--brand", "MiniBrew 咖啡", "--variants", "3", "--no-length-control")
    run("choose", "1", "2")
    fake.queue(Reply(text="## 一键清洗\n\n喝完按一下，三十秒自动冲洗，明早直接用。现在下单享早鸟价。", usage=(600, 40)))
    run("versions", "1", "--sections")
    run("revise", "1", "--section", "2", "--preset", "cta", "--instruction", "提到早鸟价", "--no-length-control")
    run("versions", "1")
    shown = run("show", "1", "--format", "json")
