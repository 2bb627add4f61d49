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

from writer.errors import UserError

DEFAULT_PRICES = Path(__file__).with_name("prices.toml")
ANY_PROVIDER = "*"
_SNAPSHOT_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4}|latest)$")


class PriceFileError(UserError, ValueError):
    """The price file cannot be read; the message names the file and the problem."""

    key = "user_errors.price_file"


@dataclass(frozen=True)
class Price:
    model: str
    input_per_1m: float
    output_per_1m: float
    currency: str
    provider: str = ANY_PROVIDER
    source: str = "default"  # default | file | edited

    def cost(self, input_tokens: int | None, output_tokens: int | None) -> float:
        return round(
            ((input_tokens or 0) * self.input_per_1m + (output_tokens or 0) * self.output_per_1m)
            / 1_000_000,
            8,
        )


def _read(path: Path, source: str) -> dict[tuple[str, str], Price]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PriceFileError(f"price file {path}: {exc}") from None
    prices = {}
    for model, entry in (data.get("models") or {}).items():
        try:
            price = Price(model.lower(), float(entry["input"]), float(entry["output"]),
                          str(entry["currency"]), str(entry.get("provider", ANY_PROVIDER)),
                          source)
        except (KeyError, TypeError, ValueError):
            raise PriceFileError(
                f"price file {path}: model {model!r} needs input, output (per 1M tokens) and currency"
            ) from None
        if price.input_per_1m < 0 or price.output_per_1m < 0:
            raise PriceFileError(f"price file {path}: model {model!r} has a negative price")
        prices[(price.provider, price.model)] = price
    return prices


class PriceTable:
    """Prices by (provider, model); provider "*" applies to any provider. Later
    layers win: shipped defaults < WRITER_PRICES_FILE < prices edited in the app."""

    def __init__(self, prices: dict[tuple[str, str], Price]):
        self.prices = prices

    @classmethod
    def load(cls, overrides: Path | None = None) -> "PriceTable":
        prices = dict(_read(DEFAULT_PRICES, "default"))
        if overrides is not None:
            prices.update(_read(overrides, "file"))
        return cls(prices)

    def with_edits(self, rows: list[dict]) -> "PriceTable":
        """This table with the rows of the `prices` table (Settings page) on top."""
        prices = dict(self.prices)
        for row in rows:
            price = Price(row["model"].lower(), row["input_per_1m"], row["output_per_1m"],
                          row["currency"], row["provider"] or ANY_PROVIDER, "edited")
            prices[(price.provider, price.model)] = price
        return PriceTable(prices)

    def lookup(self, model: str | None, provider: str | None = None) -> Price | None:
        """Exact name, then without a relay prefix (``openai/``), then without a
        dated snapshot suffix (``-2024-08-06``); a provider's own price first."""
        if not model:
            return None
        name = model.strip().lower()
        candidates = [name, name.rsplit("/", 1)[-1]]
        candidates += [_SNAPSHOT_SUFFIX.sub("", c) for c in candidates]
        for candidate in candidates:
            for key in ((provider, candidate), (ANY_PROVIDER, candidate)):
                if key in self.prices:
                    return self.prices[key]
        return None

    def rows(self) -> list[Price]:
        return sorted(self.prices.values(), key=lambda p: (p.model, p.provider))


@lru_cache(maxsize=8)
def _cached_table(overrides: Path | None, mtime: float | None) -> PriceTable:
    return PriceTable.load(overrides)


def price_table(overrides: Path | None = None, edits: list[dict] | None = None) -> PriceTable:
    mtime = overrides.stat().st_mtime if overrides and overrides.exists() else None
    table = _cached_table(overrides, mtime)
    return table.with_edits(edits) if edits else table
