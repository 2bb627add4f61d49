"""Prices (a data file plus user overrides) and the cost of one article.

Usage reported by the provider wins over an estimate; an unknown model is
"unpriced" (cost None), never 0.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DEFAULT_PRICES = Path(__file__).with_name("prices.toml")
_SNAPSHOT_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4}|latest)$")


class PriceFileError(ValueError):
    pass


@dataclass(frozen=True)
class Price:
    model: str
    input_per_1m: float
    output_per_1m: float
    currency: str

    def cost(self, input_tokens: int | None, output_tokens: int | None) -> float:
        return round(
            ((input_tokens or 0) * self.input_per_1m + (output_tokens or 0) * self.output_per_1m)
            / 1_000_000,
            8,
        )


def _read(path: Path) -> dict[str, Price]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PriceFileError(f"price file {path}: {exc}") from None
    prices = {}
    for model, entry in (data.get("models") or {}).items():
        try:
            price = Price(model.lower(), float(entry["input"]), float(entry["output"]),
                          str(entry["currency"]))
        except (KeyError, TypeError, ValueError):
            raise PriceFileError(
                f"price file {path}: model {model!r} needs input, output (per 1M tokens) and currency"
            ) from None
        if price.input_per_1m < 0 or price.output_per_1m < 0:
            raise PriceFileError(f"price file {path}: model {model!r} has a negative price")
        prices[price.model] = price
    return prices


class PriceTable:
    def __init__(self, prices: dict[str, Price]):
        self.prices = prices

    @classmethod
    def load(cls, overrides: Path | None = None) -> "PriceTable":
        prices = dict(_read(DEFAULT_PRICES))
        if overrides is not None:
            prices.update(_read(overrides))
        return cls(prices)

    def lookup(self, model: str | None) -> Price | None:
        """Exact name, then without a relay prefix (``openai/``), then without a
        dated snapshot suffix (``-2024-08-06``)."""
        if not model:
            return None
        name = model.strip().lower()
        candidates = [name, name.rsplit("/", 1)[-1]]
        candidates += [_SNAPSHOT_SUFFIX.sub("", c) for c in candidates]
        for candidate in candidates:
            if candidate in self.prices:
                return self.prices[candidate]
        return None


@lru_cache(maxsize=8)
def _cached_table(overrides: Path | None, mtime: float | None) -> PriceTable:
    return PriceTable.load(overrides)


def price_table(overrides: Path | None = None) -> PriceTable:
    mtime = overrides.stat().st_mtime if overrides and overrides.exists() else None
    return _cached_table(overrides, mtime)
