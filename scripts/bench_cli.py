"""How long a read-only CLI command takes to answer, beside a bare Python start.

    .venv/bin/python scripts/bench_cli.py                       # this checkout
    .venv/bin/python scripts/bench_cli.py --root /tmp/old-tree  # another checkout, same venv
    .venv/bin/python scripts/bench_cli.py --repeat 21 --json

Each repetition runs `python -c pass` and then every command, one after the other
(interleaved, so a busy machine slows them alike), against a fresh empty database
created once before timing (its migrations are not counted). Prints the median,
minimum and maximum wall time of each, and each command's median as a multiple of
`python -c pass` — the figure to compare between machines. Target (docs/performance.md,
issue 20): a read-only command answers in at most 500 ms.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = (("history", "--limit", "1"), ("usage",), ("brand", "list"), ("versions", "1"))


def _time_ms(argv: list[str], cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)
    return (time.perf_counter() - start) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to run (its writer/)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter (the venv's)")
    parser.add_argument("--repeat", type=int, default=11, help="repetitions (default 11)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-cli-") as scratch:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WRITER_", "OPENAI_"))}
        env.update(WRITER_DB=str(Path(scratch) / "writer.db"), WRITER_NO_DOTENV="1")
        warm = subprocess.run([args.python, "-m", "writer", "history", "--limit", "1"],
                              cwd=args.root, env=env, capture_output=True, text=True)
        if warm.returncode != 0:  # creates the database and compiles the bytecode
            print(f"python -m writer history failed in {args.root}:\n{warm.stderr}",
                  file=sys.stderr)
            return 1
        runs: dict[str, list[float]] = {"python -c pass": []}
        runs.update({" ".join(c): [] for c in COMMANDS})
        for _ in range(args.repeat):
            runs["python -c pass"].append(_time_ms([args.python, "-c", "pass"], args.root, env))
            for command in COMMANDS:
                runs[" ".join(command)].append(
                    _time_ms([args.python, "-m", "writer", *command], args.root, env))

    base = statistics.median(runs["python -c pass"])
    figures = {name: {"median_ms": round(statistics.median(ms), 1), "min_ms": round(min(ms), 1),
                      "max_ms": round(max(ms), 1),
                      "x_python": round(statistics.median(ms) / base, 1)}
               for name, ms in runs.items()}
    if args.json:
        print(json.dumps({"root": str(args.root), "repeat": args.repeat, "figures": figures},
                         indent=2))
        return 0
    print(f"{args.root} · {args.repeat} runs each · empty database · {os.cpu_count()} cores")
    print(f"{'command':<36} {'median':>9} {'min':>9} {'max':>9} {'x python':>9}")
    for name, f in figures.items():
        label = name if name.startswith("python ") else f"python -m writer {name}"
        print(f"{label:<36} {f['median_ms']:>7.0f}ms {f['min_ms']:>7.0f}ms {f['max_ms']:>7.0f}ms "
              f"{f['x_python']:>8.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
