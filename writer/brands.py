"""Brand kits: how a team's copy must sound and what it must (not) say.

A kit is data — name, voice, audience, do / don't rules, banned words, required terms
(product names, slogans), product facts, one or two sample texts — stored in the
`brands` table (m011) and shared as TOML. The prompt templates get its parts as
placeholders (prompts/_shared.toml [brand]); after each generation `check()` looks for
banned words (with their positions), required terms that are missing and the brief's
keywords that are missing.

Kits are stored by writer/storage/brands.py (`save`, `get`, `listing`, `names`,
`delete`); this module is the kit itself, its checks and its TOML. A team shares kits
as TOML (`to_toml`, `from_toml`): one kit as top-level keys, or several as
`[[brands]]` tables, with the field names of `BrandKit` as keys.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import asdict, dataclass, field

from writer.errors import UserError

MAX_NAME_CHARS = 60
MAX_TEXT_CHARS = 4000  # voice, audience, facts and each sample: the kit goes in every prompt
MAX_ITEM_CHARS = 200  # one rule, banned word or required term
MAX_ITEMS = 50  # per list
MAX_SAMPLES = 2
MAX_TOML_KB = 2048  # a kit file (several kits at their limits are well under it)
TEXT_FIELDS = ("voice", "audience", "facts")
LIST_FIELDS = ("do", "dont", "banned_words", "required_terms", "samples")
FIELDS = ("name", "voice", "audience", "do", "dont", "banned_words", "required_terms", "facts",
          "samples")


class BrandError(UserError, ValueError):
    """A kit that cannot be used; the message is one line that says what to fix.
    `code` names the problem and `field` the kit's field, so a page can say it in the
    UI language (locale keys `brands.error_<code>`, formatted with `values`)."""

    key = "user_errors.brand"

    def __init__(self, message: str, *, code: str = "", field: str = "", **values):
        super().__init__(message)
        self.code, self.field, self.values = code, field, values


@dataclass(frozen=True)
class BrandKit:
    name: str
    voice: str = ""
    audience: str = ""
    do: tuple[str, ...] = ()
    dont: tuple[str, ...] = ()
    banned_words: tuple[str, ...] = ()
    required_terms: tuple[str, ...] = ()
    facts: str = ""
    samples: tuple[str, ...] = ()
    id: int | None = field(default=None, compare=False)

    def __post_init__(self):
        name = " ".join(str(self.name or "").split())
        if not name:
            raise BrandError("a brand kit needs a name", code="name_empty", field="name")
        object.__setattr__(self, "name", name)
        for list_field in LIST_FIELDS:
            value = getattr(self, list_field)
            if list_field == "samples":
                value = [value] if isinstance(value, str) else value  # one sample text
                value = [_newlines(v) for v in value or ()]
            object.__setattr__(self, list_field, _clean_list(value))
        for text_field in TEXT_FIELDS:
            object.__setattr__(self, text_field, _newlines(getattr(self, text_field)).strip())
        _validate(self)

    def as_dict(self) -> dict:
        data = asdict(self)
        data.pop("id")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def _newlines(text) -> str:
    return str(text or "").replace("\r\n", "\n").replace("\r", "\n")


def _validate(kit: BrandKit) -> None:
    if len(kit.name) > MAX_NAME_CHARS:
        raise BrandError(f"the kit name is {len(kit.name)} characters; keep it under "
                         f"{MAX_NAME_CHARS}", code="name_long", field="name",
                         limit=MAX_NAME_CHARS)
    for name in TEXT_FIELDS:
        if len(getattr(kit, name)) > MAX_TEXT_CHARS:
            raise BrandError(f"{name} of kit «{kit.name}» is {len(getattr(kit, name))} "
                             f"characters; keep it under {MAX_TEXT_CHARS}", code="text_long",
                             field=name, limit=MAX_TEXT_CHARS)
    if len(kit.samples) > MAX_SAMPLES:
        raise BrandError(f"kit «{kit.name}» has {len(kit.samples)} samples; give one or two",
                         code="too_many_samples", field="samples", limit=MAX_SAMPLES)
    for sample in kit.samples:
        if len(sample) > MAX_TEXT_CHARS:
            raise BrandError(f"a sample of kit «{kit.name}» is {len(sample)} characters; keep "
                             f"each under {MAX_TEXT_CHARS}", code="text_long", field="samples",
                             limit=MAX_TEXT_CHARS)
    for name in ("do", "dont", "banned_words", "required_terms"):
        items = getattr(kit, name)
        if len(items) > MAX_ITEMS:
            raise BrandError(f"{name} of kit «{kit.name}» has {len(items)} entries; keep it to "
                             f"{MAX_ITEMS}", code="too_many_items", field=name, limit=MAX_ITEMS)
        for item in items:
            if len(item) > MAX_ITEM_CHARS:
                raise BrandError(f"an entry of {name} in kit «{kit.name}» is {len(item)} "
                                 f"characters; keep each under {MAX_ITEM_CHARS}",
                                 code="item_long", field=name, limit=MAX_ITEM_CHARS)


def split_items(text: str) -> tuple[str, ...]:
    """Banned words or required terms as typed in a box: one per line, or all on one
    line separated by commas (ASCII or Chinese, 、 ; too). With several lines a comma
    stays part of its line (a slogan like "每一杯，都新鲜")."""
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    if len(lines) == 1:
        lines = re.split(r"[,，、;；]", lines[0])
    return _clean_list(lines)


def _clean_list(value) -> tuple[str, ...]:
    return unique_items(value.splitlines() if isinstance(value, str) else value)


def unique_items(values) -> tuple[str, ...]:
    """The non-empty items, stripped, each once, in order (linear: a dict keeps the order)."""
    seen: dict[str, None] = {}
    for item in values or ():
        item = str(item).strip()
        if item:
            seen.setdefault(item)
    return tuple(seen)


@dataclass(frozen=True)
class Found:
    term: str
    start: int  # character offsets in the text
    end: int


@dataclass(frozen=True)
class CheckResult:
    banned_found: tuple[Found, ...] = ()
    required_missing: tuple[str, ...] = ()
    keywords_missing: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not (self.banned_found or self.required_missing or self.keywords_missing)

    def as_dict(self) -> dict:
        return {"banned_found": [{"term": f.term, "start": f.start, "end": f.end}
                                 for f in self.banned_found],
                "required_missing": list(self.required_missing),
                "keywords_missing": list(self.keywords_missing),
                "passed": self.passed}


def _pattern(term: str) -> re.Pattern:
    """Case-insensitive; a Latin word matches whole words only ("art" not in "start"),
    Chinese matches anywhere (no spaces between words)."""
    escaped = re.escape(term)
    if re.match(r"\w", term, re.ASCII):
        escaped = r"(?<![A-Za-z0-9])" + escaped
    if re.search(r"\w$", term, re.ASCII):
        escaped += r"(?![A-Za-z0-9])"
    return re.compile(escaped, re.IGNORECASE)


def check(text: str, kit: BrandKit | None, keywords=()) -> CheckResult:
    """Banned words found (each occurrence, with offsets), required terms missing and
    the brief's keywords missing from `text`."""
    banned = []
    for term in (kit.banned_words if kit else ()):
        banned += [Found(term, m.start(), m.end()) for m in _pattern(term).finditer(text)]
    banned.sort(key=lambda f: (f.start, f.end))
    required = tuple(term for term in (kit.required_terms if kit else ())
                     if not _pattern(term).search(text))
    missing_keywords = tuple(k for k in keywords if not _pattern(k).search(text))
    return CheckResult(tuple(banned), required, missing_keywords)


def find_kit(kits, name: str) -> BrandKit | None:
    """The kit of `kits` with this name: exact, else the one whose name matches
    ignoring case and spacing (a spreadsheet cell, a command-line flag)."""
    wanted = " ".join(str(name or "").split())
    kits = list(kits or ())
    exact = [k for k in kits if k.name == wanted]
    if exact:
        return exact[0]
    loose = [k for k in kits if k.name.casefold() == wanted.casefold()]
    return loose[0] if len(loose) == 1 else None


# -- TOML -------------------------------------------------------------------------------

TOML_HEADER = ("# Brand kit for the AI writing assistant. Import it on the Brands page or with:\n"
               "#   python -m writer brand import FILE.toml\n")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SHORT_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _escape_control(ch: str) -> str:
    return _SHORT_ESCAPES.get(ch) or f"\\u{ord(ch):04X}"


def _toml_string(text: str) -> str:
    """A TOML basic string: one line, everything escaped that must be."""
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + re.sub(r"[\x00-\x1f\x7f]", lambda m: _escape_control(m.group()), text) + '"'


def _toml_text(text: str) -> str:
    """A TOML value for a text that may span lines: a multi-line basic string then."""
    if "\n" not in text:
        return _toml_string(text)
    text = text.replace("\\", "\\\\")
    text = re.sub(r'"(?=")|"$', '\\\\"', text)  # never three quotes in a row, none last
    text = _CONTROL.sub(lambda m: _escape_control(m.group()), text.replace("\r\n", "\n"))
    return '"""\n' + text + '"""'


def _toml_list(items, multiline: bool = False) -> str:
    if not items:
        return "[]"
    render = _toml_text if multiline else _toml_string
    return "[\n" + "".join(f"  {render(item)},\n" for item in items) + "]"


def _toml_body(kit: BrandKit) -> str:
    lines = [f"name = {_toml_string(kit.name)}",
             f"voice = {_toml_text(kit.voice)}",
             f"audience = {_toml_text(kit.audience)}",
             f"do = {_toml_list(kit.do)}",
             f"dont = {_toml_list(kit.dont)}",
             f"banned_words = {_toml_list(kit.banned_words)}",
             f"required_terms = {_toml_list(kit.required_terms)}",
             f"facts = {_toml_text(kit.facts)}",
             f"samples = {_toml_list(kit.samples, multiline=True)}"]
    return "\n".join(lines) + "\n"


def to_toml(kit: BrandKit) -> str:
    """One kit as a TOML file (top-level keys); `from_toml` reads it back unchanged."""
    return TOML_HEADER + "\n" + _toml_body(kit)


def to_toml_all(kits: list[BrandKit]) -> str:
    """Several kits in one file, one `[[brands]]` table each."""
    return TOML_HEADER + "".join("\n[[brands]]\n" + _toml_body(kit) for kit in kits)


def from_toml(text: str | bytes) -> list[BrandKit]:
    """The kits in a TOML file: one kit as top-level keys, or several as `[[brands]]`
    tables. BrandError (one line, naming the kit and the key) when it cannot be used."""
    if len(text) > MAX_TOML_KB * 1024:  # checked before decoding or parsing anything
        raise BrandError(f"the file is too large for brand kits: at most {MAX_TOML_KB} KB",
                         code="toml_size", limit=MAX_TOML_KB)
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise BrandError("the file is not UTF-8 text: save it as UTF-8",
                             code="toml_encoding") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BrandError(f"not valid TOML: {exc}", code="toml_syntax", detail=str(exc)) from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise BrandError("the file nests tables or lists too deeply: a brand kit file needs "
                         "only [[brands]] tables of texts and lists",
                         code="toml_nested") from None
    if "brands" in data:
        others = sorted(set(data) - {"brands"})
        if others:
            raise BrandError(f"put every kit in a [[brands]] table; found top-level keys too: "
                             f"{', '.join(others)}", code="toml_mixed", keys=", ".join(others))
        tables = data["brands"]
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            raise BrandError("`brands` must be [[brands]] tables, one per kit",
                             code="toml_brands")
    else:
        tables = [data] if data else []
    if not tables:
        raise BrandError("the file holds no brand kit: give at least a name", code="toml_empty")
    kits, seen = [], set()
    for number, table in enumerate(tables, 1):
        kit = _kit_from_table(table, number if len(tables) > 1 else 0)
        if kit.name in seen:
            raise BrandError(f"the file has two kits named «{kit.name}»", code="toml_duplicate",
                             name=kit.name)
        seen.add(kit.name)
        kits.append(kit)
    return kits


def _kit_from_table(table: dict, number: int) -> BrandKit:
    where = f"kit {number}" if number else "the kit"
    label = f"#{number or 1}"  # how the UI names the kit: its name, else its place
    if isinstance(table.get("name"), str) and table["name"].strip():
        label = " ".join(table["name"].split())
        where += f" («{label}»)"
    unknown = [key for key in table if key not in FIELDS]
    if unknown:
        raise BrandError(f"{where}: unknown key {', '.join(map(repr, unknown))}; use: "
                         f"{', '.join(FIELDS)}", code="toml_key", kit=label,
                         field_name=", ".join(unknown))
    if not isinstance(table.get("name"), str) or not table["name"].strip():
        raise BrandError(f"{where} has no name: add name = \"…\"", code="toml_no_name",
                         kit=label)
    for key, value in table.items():
        if key in LIST_FIELDS:
            ok = isinstance(value, str) or (isinstance(value, list)
                                            and all(isinstance(v, str) for v in value))
            if not ok:
                raise BrandError(f"{where}: {key} must be a list of texts, like "
                                 f'{key} = ["…", "…"]', code="toml_type", kit=label,
                                 field_name=key)
        elif not isinstance(value, str):
            raise BrandError(f"{where}: {key} must be a text in quotes", code="toml_type",
                             kit=label, field_name=key)
    return BrandKit(**table)
