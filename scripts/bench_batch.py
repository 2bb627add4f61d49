"""A 200-row batch through the real CLI against a loopback provider that behaves like a
busy one, with the figures the closing note of issue 11 asks for.

The provider (tests/fake_openai.py answering as tests/scripted_writer.py) writes each
article at about the length asked (some rows stop early, some ramble, so length control
works), streams at a steady pace, allows at most --provider-limit streams at once and
answers 429 with Retry-After beyond that (so a batch asking for more must slow down),
and refuses rows whose topic contains "FAIL" (HTTP 400). The batch:

  python -m writer batch products.csv --concurrency 8 --yes --out results.xlsx

In the same run it measures one row alone (the baseline), then the batch, interrupts
it with Ctrl-C half way (--interrupt) and resumes it with `--resume`, and prints: wall
time, rows per minute, the most streams at once, 429 answers and retries, rows in the
length range, failed rows, articles per row (1 = never written twice), and the wall
time against the ideal (one row's time × rows / the provider's limit).

    .venv/bin/python scripts/bench_batch.py [--rows 200] [--concurrency 8]
                                            [--provider-limit 6] [--no-interrupt]
"""
from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fake_openai import FakeOpenAI, Reply  # noqa: E402
from scripted_writer import ScriptedWriter  # noqa: E402

PRODUCTS_ZH = ["便携咖啡机", "降噪耳机", "智能手环", "空气炸锅", "电动牙刷", "扫地机器人", "保温杯",
               "机械键盘", "投影仪", "护眼台灯"]
PRODUCTS_EN = ["portable espresso maker", "noise-cancelling headphones", "fitness band",
               "air fryer", "electric toothbrush", "robot vacuum", "travel mug",
               "mechanical keyboard", "mini projector", "desk lamp"]


class BusyProvider:
    """At most `limit` streams at once (429 + Retry-After beyond), rows marked FAIL
    refused, the rest answered by ScriptedWriter in a mix of modes."""

    def __init__(self, fake: FakeOpenAI, limit: int, chunk_delay: float):
        self.fake, self.limit = fake, limit
        self.writers = {mode: ScriptedWriter(mode, chunk_chars=12, chunk_delay=chunk_delay)
                        for mode in ("exact", "early", "ramble")}
        self.lock = threading.Lock()
        self.count = 0
        self.rate_limited = 0
        self.refused = 0

    def __call__(self, request: dict) -> Reply:
        prompt = " ".join(str(m.get("content", "")) for m in request["messages"])
        with self.lock:
            self.count += 1
            number = self.count
            busy = self.fake.active > self.limit  # this request is already counted
            if busy:
                self.rate_limited += 1
        if busy:
            return Reply(status=429, headers={"Retry-After": "1"},
                         error_message="Rate limit reached: too many concurrent requests")
        if "FAIL" in prompt:
            with self.lock:
                self.refused += 1
            return Reply(status=400, error_message="This row's request is invalid")
        mode = "early" if number % 7 == 0 else "ramble" if number % 5 == 0 else "exact"
        return self.writers[mode](request)


def make_csv(path: Path, rows: int, fail_every: int) -> None:
    lines = ["主题,类型,字数,语言,SKU"]
    for i in range(1, rows + 1):
        zh = i % 2 == 0
        name = (PRODUCTS_ZH if zh else PRODUCTS_EN)[i % 10]
        topic = f"{name} 第{i}款" if zh else f"{name} model {i}"
        if fail_every and i % fail_every == 0:
            topic = "FAIL " + topic
        length = (100, 150, 200)[i % 3]
        lines.append(f"{topic},产品描述,{length},{'中文' if zh else '英文'},SKU-{i:04d}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")


def run_cli(args: list[str], env: dict, interrupt_after_rows: int | None = None,
            db: Path | None = None) -> tuple[int, float, str]:
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "writer", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if interrupt_after_rows:
        while proc.poll() is None:
            if _ended_rows(db) >= interrupt_after_rows:
                proc.send_signal(signal.SIGINT)
                break
            time.sleep(0.1)
    _, err = proc.communicate(timeout=1800)
    return proc.returncode, time.monotonic() - started, err


def _ended_rows(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM articles WHERE batch_id IS NOT NULL AND "
                                "status IN ('completed', 'failed')").fetchone()[0]
    except sqlite3.Error:
        return 0


def figures(db: Path, batch_id: int) -> dict:
    conn = sqlite3.connect(db)
    one = lambda sql: conn.execute(sql, [batch_id]).fetchone()  # noqa: E731
    valid = one("SELECT count(*) FROM batch_rows WHERE batch_id = ? AND error IS NULL")[0]
    completed = one("SELECT count(*) FROM articles WHERE batch_id = ? AND status = 'completed'")[0]
    failed = one("SELECT count(*) FROM articles WHERE batch_id = ? AND status = 'failed'")[0]
    in_range = one("SELECT count(*) FROM articles WHERE batch_id = ? AND status = 'completed' "
                   "AND words BETWEEN 0.8 * target_words AND 1.2 * target_words")[0]
    retries = one("SELECT coalesce(sum(retries), 0) FROM articles WHERE batch_id = ?")[0]
    most = one("SELECT coalesce(max(n), 0) FROM (SELECT count(*) n FROM articles "
               "WHERE batch_id = ? GROUP BY batch_row)")[0]
    ratio = one("SELECT avg(1.0 * words / target_words), min(1.0 * words / target_words), "
                "max(1.0 * words / target_words) FROM articles WHERE batch_id = ? "
                "AND status = 'completed'")
    conn.close()
    return {"valid": valid, "completed": completed, "failed": failed, "in_range": in_range,
            "retries": retries, "articles_per_row_max": most, "ratio": ratio}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--provider-limit", type=int, default=6)
    parser.add_argument("--chunk-delay", type=float, default=0.02,
                        help="seconds between 12-character chunks (≈ 40 tokens/s)")
    parser.add_argument("--fail-every", type=int, default=40, help="every Nth row is refused")
    parser.add_argument("--no-interrupt", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI() as fake:
        tmp = Path(tmp)
        provider = BusyProvider(fake, args.provider_limit, args.chunk_delay)
        fake.responder = provider
        env = {**os.environ, "OPENAI_API_KEY": "sk-bench", "OPENAI_BASE_URL": fake.base_url,
               "WRITER_MODEL": "gpt-4o-mini", "WRITER_NO_DOTENV": "1",
               "WRITER_UI_LANGUAGE": "en"}

        # Baseline: one row alone, same provider, same length.
        solo_csv, solo_db = tmp / "solo.csv", tmp / "solo.db"
        make_csv(solo_csv, 3, 0)
        code, _, err = run_cli(["batch", str(solo_csv), "--yes", "--concurrency", "1",
                                        "--out", str(tmp / "solo.csv.out.csv")],
                                       {**env, "WRITER_DB": str(solo_db)})
        if code != 0:
            print(err, file=sys.stderr)
            return 1
        with sqlite3.connect(solo_db) as conn:  # the rows' own time, not the CLI's start-up
            solo_row_s = conn.execute("SELECT avg(duration_ms) FROM articles").fetchone()[0] / 1000

        csv_path, db = tmp / "products.csv", tmp / "batch.db"
        make_csv(csv_path, args.rows, args.fail_every)
        env_db = {**env, "WRITER_DB": str(db)}
        fake.max_active = 0
        requests_before = len(fake.requests)
        out = tmp / "results.xlsx"
        common = ["--yes", "--concurrency", str(args.concurrency), "--out", str(out), "--quiet"]
        t0 = time.monotonic()
        interrupted_at = None
        if args.no_interrupt:
            code, wall, err = run_cli(["batch", str(csv_path), *common], env_db)
            resumed = None
        else:
            code, first_wall, err = run_cli(["batch", str(csv_path), *common], env_db,
                                            interrupt_after_rows=args.rows // 2, db=db)
            interrupted_at = _ended_rows(db)
            if code != 130:
                print(f"expected exit 130 after Ctrl-C, got {code}:\n{err}", file=sys.stderr)
                return 1
            code, second_wall, err = run_cli(["batch", "--resume", "1", *common], env_db)
            resumed = second_wall
        wall = time.monotonic() - t0
        stats = figures(db, 1)
        import openpyxl
        book = openpyxl.load_workbook(out, read_only=True)
        sheet_rows = sum(1 for _ in book.worksheets[0].iter_rows()) - 1
        book.close()

    ideal = solo_row_s * stats["valid"] / args.provider_limit
    avg, low, high = stats["ratio"]
    print(f"rows: {args.rows} ({stats['valid']} valid), concurrency asked {args.concurrency}, "
          f"provider allows {args.provider_limit} streams")
    print(f"exit code: {code} (1 = some rows failed, as scripted)")
    print(f"wall time: {wall:.1f} s" + (f" (interrupted after {interrupted_at} rows ended, "
                                        f"resumed: {resumed:.1f} s)" if resumed else ""))
    print(f"rows per minute: {stats['completed'] * 60 / wall:.1f} completed "
          f"({(stats['completed'] + stats['failed']) * 60 / wall:.1f} ended)")
    print(f"most requests open at once at the provider: {fake.max_active} (a request answered "
          f"429 counts while it is refused)")
    print(f"429 answers: {provider.rate_limited}; retries recorded on rows: {stats['retries']}; "
          f"requests: {len(fake.requests) - requests_before}")
    print(f"completed: {stats['completed']}, failed: {stats['failed']} (refused by the provider: "
          f"{provider.refused} requests)")
    print(f"rows in length range (0.8–1.2× target): {stats['in_range']} of {stats['completed']} "
          f"completed; words/target avg {avg:.2f}, min {low:.2f}, max {high:.2f}")
    print(f"articles per batch row, most: {stats['articles_per_row_max']} (1 = never written twice)")
    print(f"results file rows: {sheet_rows}")
    print(f"baseline: one row alone {solo_row_s:.2f} s; ideal at {args.provider_limit} streams "
          f"{ideal:.1f} s; wall / ideal = {wall / ideal:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
