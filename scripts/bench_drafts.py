"""Benchmark: what durable drafts cost while streaming.

Streams the same long article from the loopback provider through `Job` with
draft saves every 2 s (the product's setting) and with drafts off, interleaved,
in one run, and reports (a) the time spent inside the draft saves as a share of
stream time, measured directly, and (b) the wall-time ratio of the two modes.
Target: ≤ 2 % overhead.

    .venv/bin/python scripts/bench_drafts.py [--runs 3] [--seconds 6]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fake_openai import FakeOpenAI, Reply  # noqa: E402
from writer.brief import Brief  # noqa: E402
from writer.config import load_settings  # noqa: E402
from writer.runs.job import Job  # noqa: E402
from writer.storage.store import Store  # noqa: E402


def run(fake, reply, settings, interval_s):
    fake.queue(reply)
    # Free-form: with length control a 20,000-word target is planned from an outline
    # first, and the queued reply would be taken as the outline (a 12-character article).
    job = Job(Brief(topic="draft overhead", language="zh", target_words=20000), settings,
              draft_interval_s=interval_s, length_control=False)
    spent = []
    original = Store.save_draft

    def timed(self, *args):
        start = time.perf_counter()
        original(self, *args)
        spent.append(time.perf_counter() - start)

    Store.save_draft = timed
    try:
        start = time.perf_counter()
        for _ in job.run():
            pass
        total = time.perf_counter() - start
    finally:
        Store.save_draft = original
    return total, sum(spent), len(spent), len(job.text)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp()
    os.environ.update(WRITER_DB=f"{tmp}/bench.db", WRITER_NO_DOTENV="1", OPENAI_API_KEY="k",
                      WRITER_MODEL="gpt-4o-mini", WRITER_MAX_OUTPUT_TOKENS="100000")
    chunks = int(args.seconds / 0.005)
    text = "流式输出让读者安心，草稿每两秒保存一次。Drafts are saved every two seconds. " * (chunks // 4)
    reply = Reply(text=text, chunk_chars=max(1, len(text) // chunks), chunk_delay=0.005)
    with FakeOpenAI() as fake:
        os.environ["OPENAI_BASE_URL"] = fake.base_url
        settings = load_settings()
        on, off = [], []
        for _ in range(args.runs):
            on.append(run(fake, reply, settings, 2.0))
            off.append(run(fake, reply, settings, float("inf")))
    total_on = statistics.median(r[0] for r in on)
    total_off = statistics.median(r[0] for r in off)
    share = statistics.median(r[1] / r[0] for r in on)
    saves = statistics.median(r[2] for r in on)
    chars = on[0][3]
    print(f"{args.runs} interleaved runs of a {chars:,}-character article streamed in "
          f"{len(reply.pieces()):,} chunks:")
    print(f"  drafts every 2 s: {total_on:.2f} s, {saves:.0f} saves, "
          f"{share * 100:.2f} % of stream time inside the saves")
    print(f"  drafts off:       {total_off:.2f} s")
    print(f"  wall-time ratio on/off: {total_on / total_off:.3f}x (target overhead ≤ 2 %)")


if __name__ == "__main__":
    main()
