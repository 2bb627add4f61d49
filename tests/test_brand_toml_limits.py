"""A brand kit file nested 100,000 deep, or far too large, is refused with a message:
`from_toml` (the Brands page and the CLI share it) and `python -m writer brand import`."""
from __future__ import annotations

import pytest

from test_cli import cli
from writer import brands
from writer.brands import MAX_TOML_KB, BrandError

DEEP_ARRAYS = "name = \"x\"\nfacts = " + "[" * 100_000 + "]" * 100_000 + "\n"
DEEP_TABLES = "name = \"x\"\nfacts = " + "{a = " * 100_000 + "1" + "}" * 100_000 + "\n"


@pytest.mark.parametrize("text", [DEEP_ARRAYS, DEEP_TABLES, DEEP_ARRAYS.encode()])
def test_deeply_nested_toml_is_a_brand_error_not_a_recursion_error(text):
    with pytest.raises(BrandError) as refused:
        brands.from_toml(text)
    assert refused.value.code == "toml_nested"
    assert "nests" in str(refused.value)


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed():
    text = "name = \"x\"\nfacts = \"" + "长" * (MAX_TOML_KB * 1024) + "\"\n"
    with pytest.raises(BrandError) as refused:
        brands.from_toml(text.encode())
    assert refused.value.code == "toml_size" and refused.value.values["limit"] == MAX_TOML_KB


def test_an_ordinary_kit_file_still_imports():
    (kit,) = brands.from_toml("name = \"MiniBrew\"\ndo = [\"短句\"]\n")
    assert kit.name == "MiniBrew" and kit.do == ("短句",)


def test_cli_brand_import_of_a_deep_file_exits_2_with_one_line(env, tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text(DEEP_ARRAYS, encoding="utf-8")
    result = cli("brand", "import", str(path), env=env)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "RecursionError" not in result.stderr
    assert "deep.toml" in result.stderr and "nests" in result.stderr
    assert result.stdout == ""


def test_the_brands_page_says_so_in_the_ui_language():
    """The Brands page shows a BrandError from its code (locale brands.error_toml_nested)."""
    from views.brand_view import error_text
    from writer.io.i18n import Translator

    with pytest.raises(BrandError) as refused:
        brands.from_toml(DEEP_TABLES)
    for language, words in (("en", "too deeply"), ("zh", "嵌套太深")):
        assert words in error_text(refused.value, Translator(language))
