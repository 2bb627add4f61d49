"""What the user asked for: one `Brief`, validated the same way for the form, the CLI and batch."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from writer.brands import BrandKit, unique_items
from writer.errors import UserError

CONTENT_TYPES = ("blog", "marketing_copy", "product_description", "social_post")
LANGUAGES = ("zh", "en")
STYLE_PRESETS = ("professional", "casual", "persuasive", "storytelling")
MIN_WORDS, MAX_WORDS = 50, 20000
MAX_TOPIC_CHARS = 500
MAX_FIELD_CHARS = 300  # style, audience
MAX_KEYWORDS = 20  # keywords of one brief, after de-duplication
MAX_KEYWORD_CHARS = 50  # characters of one keyword
# The keywords as typed in one text box: every keyword at its longest and a separator.
MAX_KEYWORDS_TEXT_CHARS = MAX_KEYWORDS * (MAX_KEYWORD_CHARS + 2)
# Control characters (C0, DEL, C1) never reach a prompt, the database or a terminal:
# removed from every text of the brief; a line break or tab becomes a space.
_CONTROLS = {code: None for code in (*range(0x20), *range(0x7F, 0xA0))}
_CONTROLS.update({ord(ch): " " for ch in "\t\n\r\v\f\x1c\x1d\x1e\x1f\x85"})


class BriefError(UserError, ValueError):
    """Invalid input; the message is one line that says what to fix. `field` names the
    form field and `code` the problem, so a page can say it in the UI language next
    to that field (locale keys `brief_errors.<code>`)."""

    key = "user_errors.brief"

    def __init__(self, message: str, *, field: str = "", code: str = "", **values):
        super().__init__(message, **values)  # values: what `brief_errors.<code>` needs
        self.field, self.code = field, code


@dataclass(frozen=True)
class Brief:
    topic: str
    content_type: str = "blog"
    style: str = "professional"
    target_words: int = 800
    language: str = "zh"
    audience: str = ""
    keywords: tuple[str, ...] = field(default_factory=tuple)
    brand: BrandKit | None = None  # the brand kit to write with (writer/brands.py)

    def __post_init__(self):
        if isinstance(self.brand, dict):  # from JSON (a batch row's stored brief)
            object.__setattr__(self, "brand", BrandKit(**self.brand))
        # Normalise before validating so the form, CLI and CSV behave the same.
        object.__setattr__(self, "topic", one_line(self.topic))
        object.__setattr__(self, "style", one_line(self.style) or "professional")
        object.__setattr__(self, "audience", one_line(self.audience))
        object.__setattr__(self, "keywords", parse_keywords(self.keywords))
        validate(self)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["keywords"] = list(self.keywords)
        data["brand"] = self.brand.as_dict() if self.brand else None
        return data


def one_line(text) -> str:
    """A text of the brief as one line: no control characters (an escape sequence in a
    topic would reach the prompt, the database and a terminal), whitespace collapsed."""
    return " ".join(str(text or "").translate(_CONTROLS).split())


def parse_keywords(value) -> tuple[str, ...]:
    """Accept a list or a string split on commas (ASCII or Chinese) / semicolons / newlines.
    Too many (or too long) keywords are refused here, before anything is sent."""
    if isinstance(value, str):
        for sep in "，、;；\n":
            value = value.replace(sep, ",")
        value = value.split(",")
    keywords = unique_items(one_line(item) for item in value or ())
    if len(keywords) > MAX_KEYWORDS:
        raise BriefError(f"{len(keywords)} keywords; give at most {MAX_KEYWORDS}",
                         field="keywords", code="keywords_many", keywords_max=MAX_KEYWORDS)
    for keyword in keywords:
        if len(keyword) > MAX_KEYWORD_CHARS:
            raise BriefError(f"keyword «{keyword[:20]}…» is {len(keyword)} characters; keep each "
                             f"under {MAX_KEYWORD_CHARS}", field="keywords", code="keyword_long",
                             keyword_max=MAX_KEYWORD_CHARS)
    return keywords


def stored_keywords(keywords) -> tuple[str, ...]:
    """The keywords of a brief saved before the limits (an old article, a batch row): the
    ones a new brief could still carry, so Continue, a revision or a batch resume of it
    is never refused for them."""
    kept = unique_items(one_line(item) for item in keywords or ())
    return tuple(k for k in kept if len(k) <= MAX_KEYWORD_CHARS)[:MAX_KEYWORDS]


def validate(brief: Brief) -> None:
    if not brief.topic:
        raise BriefError("topic is empty: say what the article is about",
                         field="topic", code="topic_empty")
    if len(brief.topic) > MAX_TOPIC_CHARS:
        raise BriefError(f"topic is {len(brief.topic)} characters; keep it under {MAX_TOPIC_CHARS}",
                         field="topic", code="topic_long")
    if brief.content_type not in CONTENT_TYPES:
        raise BriefError(
            f"unknown content type {brief.content_type!r}; use one of: {', '.join(CONTENT_TYPES)}",
            field="content_type", code="content_type")
    if brief.language not in LANGUAGES:
        raise BriefError(f"unknown language {brief.language!r}; use zh or en",
                         field="language", code="language")
    if isinstance(brief.target_words, bool) or not isinstance(brief.target_words, int):
        raise BriefError(f"length must be a whole number of words, got {brief.target_words!r}",
                         field="target_words", code="length_range")
    if not MIN_WORDS <= brief.target_words <= MAX_WORDS:
        raise BriefError(
            f"length {brief.target_words} is out of range; use {MIN_WORDS} to {MAX_WORDS} words",
            field="target_words", code="length_range")
    if len(brief.style) > MAX_FIELD_CHARS:
        raise BriefError(f"style and audience must be under {MAX_FIELD_CHARS} characters",
                         field="custom_style", code="field_long")
    if len(brief.audience) > MAX_FIELD_CHARS:
        raise BriefError(f"style and audience must be under {MAX_FIELD_CHARS} characters",
                         field="audience", code="field_long")
