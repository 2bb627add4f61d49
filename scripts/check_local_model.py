"""Generate two tokens with the bundled local model; used by scripts/setup.sh.

Exit 0 when it works (or when the local model is simply not installed: the app says
so itself); a crash of the native library (SIGILL) ends this process with a signal,
which setup.sh sees as an exit status of 128 + the signal number.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from writer.providers import local as local_model  # noqa: E402
from writer.providers.failures import LocalModelError  # noqa: E402

try:
    llm = local_model.load()
except LocalModelError as exc:
    print(f"local model not available: {exc}", file=sys.stderr)
    sys.exit(0)
llm.create_completion("Hello", max_tokens=2)
