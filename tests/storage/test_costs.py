import pytest

from writer.storage.prices import PriceFileError, PriceTable


@pytest.fixture
def table():
    return PriceTable.load()


@pytest.mark.parametrize("model, currency", [
    ("gpt-4o", "USD"), ("gpt-4o-mini", "USD"), ("gpt-4.1", "USD"), ("gpt-4.1-mini", "USD"),
    ("gpt-4.1-nano", "USD"), ("deepseek-chat", "CNY"), ("qwen-plus", "CNY"), ("qwen-max", "CNY"),
    ("glm-4", "CNY"),
])
def test_defaults_cover_well_known_models(table, model, currency):
    price = table.lookup(model)
    assert price is not None and price.currency == currency
    assert price.input_per_1m >= 0 and price.output_per_1m >= 0


def test_snapshots_and_relay_prefixes_match_their_base(table):
    assert table.lookup("gpt-4o-2024-08-06").model == "gpt-4o"
    assert table.lookup("gpt-4o-mini-2024-07-18").model == "gpt-4o-mini"
    assert table.lookup("openai/gpt-4.1").model == "gpt-4.1"
    assert table.lookup("GPT-4o").model == "gpt-4o"


def test_unknown_model_is_unpriced_not_free(table):
    assert table.lookup("llama3.1:8b") is None
    assert table.lookup("gpt-4o-audio-preview") is None
    assert table.lookup("") is None


def test_cost_arithmetic(table):
    price = table.lookup("gpt-4o")  # 2.50 in / 10.00 out per 1M
    assert price.cost(1_000_000, 0) == pytest.approx(2.5)
    assert price.cost(1000, 2000) == pytest.approx(0.0025 + 0.02)
    assert price.cost(None, None) == 0


def test_user_overrides_win_and_add_models(tmp_path):
    override = tmp_path / "prices.toml"
    override.write_text('[models."gpt-4o"]\ninput = 1.0\noutput = 2.0\ncurrency = "USD"\n'
                        '[models."my-relay-model"]\ninput = 3\noutput = 4\ncurrency = "CNY"\n')
    table = PriceTable.load(override)
    assert table.lookup("gpt-4o").input_per_1m == 1.0
    assert table.lookup("my-relay-model").currency == "CNY"
    assert table.lookup("deepseek-chat") is not None  # defaults still there


def test_broken_override_file_is_a_clear_error(tmp_path):
    override = tmp_path / "prices.toml"
    override.write_text('[models."x"]\ninput = 1\n')
    with pytest.raises(PriceFileError, match="needs input, output"):
        PriceTable.load(override)
