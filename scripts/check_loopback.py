"""`python -m writer check` against a loopback provider with known timing, to see the
check report known values (the closing note of issue 12 quotes its output).

The provider (tests/fake_openai.py): every answer's first text after --first-delay
seconds; the long answer's chunks alternate --gaps (e.g. 0.02,0.06 → mean 40 ms, CV 0.5;
CV 0.43 for 0.02,0.05); under concurrency, every --fail-every-th stream answers HTTP 500.

    .venv/bin/python scripts/check_loopback.py [--first-delay 0.3] [--gaps 0.02,0.05]
                                                [--fail-every 20] [--concurrency 10,50]
                                                [--json]
"""
from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fake_openai import FakeOpenAI, Reply  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--first-delay", type=float, default=0.3)
    parser.add_argument("--gaps", default="0.02,0.05")
    parser.add_argument("--fail-every", type=int, default=20)
    parser.add_argument("--concurrency", default="10,50")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    gaps = [float(g) for g in args.gaps.split(",")]
    streams = itertools.count(1)

    def responder(request: dict) -> Reply:
        max_tokens = request.get("max_tokens") or request.get("max_completion_tokens") or 0
        if max_tokens > 100:  # the long answer
            return Reply(chunks=["word "] * 200, first_delay=args.first_delay, chunk_delays=gaps,
                         usage=(60, 200))
        if max_tokens == 16 and args.fail_every and next(streams) % args.fail_every == 0:
            return Reply(status=500, error_message="overloaded")
        return Reply(chunks=["Good ", "beans, ", "fresh ", "water."],
                     first_delay=args.first_delay, chunk_delay=0.01, usage=(40, 4))

    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI(responder=responder) as fake:
        env = {**os.environ, "OPENAI_API_KEY": "sk-loopback", "OPENAI_BASE_URL": fake.base_url,
               "WRITER_MODEL": "gpt-4o-mini", "WRITER_DB": str(Path(tmp) / "check.db"),
               "WRITER_NO_DOTENV": "1"}
        command = [sys.executable, "-m", "writer", "check", "--yes", "--runs", str(args.runs),
                   "--concurrency", args.concurrency, *(["--json"] if args.json else [])]
        print("$ " + " ".join(["python -m writer", *command[3:]]), file=sys.stderr)
        result = subprocess.run(command, cwd=ROOT, env=env)
        print(f"most requests open at once at the provider: {fake.max_active}", file=sys.stderr)
        return result.returncode


if __name__ == "__main__":
    sys.exit(main())
