"""The shape of the code (docs/architecture.md): the rules no linter checks.

The layering itself is checked by import-linter (`lint-imports`, contracts in
pyproject.toml) and style by ruff, both run by scripts/test.sh before the tests."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_TOP_MODULES = 9  # 8 modules (access.py joined with issue 23) + __init__.py
MAX_LINES = 500
PACKAGES = {"cli", "runs", "generation", "providers", "storage", "io"}


def test_writer_top_level_holds_at_most_nine_files_and_the_packages():
    top = sorted(p.name for p in (ROOT / "writer").glob("*.py"))
    assert len(top) <= MAX_TOP_MODULES, top
    packages = {p.name for p in (ROOT / "writer").iterdir()
                if p.is_dir() and (p / "__init__.py").is_file()}
    assert packages == PACKAGES


def test_no_module_in_writer_or_views_is_over_500_lines():
    files = [*(ROOT / "writer").rglob("*.py"), *(ROOT / "views").glob("*.py"), ROOT / "app.py"]
    assert len(files) > 40
    long = {str(p.relative_to(ROOT)): n for p in files
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_only_storage_speaks_sql():
    """No `.execute(`/`.executescript(` call, `.conn`/`.db` attribute or a `Store`'s
    private transaction outside writer/storage (import-linter keeps sqlite3 there)."""
    found = []
    for path in [*(ROOT / "writer").rglob("*.py"), *(ROOT / "views").glob("*.py"), ROOT / "app.py"]:
        if "storage" in path.relative_to(ROOT).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in {
                    "execute", "executemany", "executescript", "conn", "db", "_write", "_read"}:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.attr}")
    assert found == []
