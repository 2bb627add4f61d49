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
MAX_FIELD_CHARS = 300


class BriefError(UserError, ValueError):
    """Invalid input; the message is one line that says what to fix. `field` names the
    form field and `code` the problem, so a page can say it in the UI language next
    to that field (locale keys `brief_errors.<code>`)."""

    key = "user_errors.brief"

    def __init__(self, message: str, *, field: str = "", code: str = ""):
        super().__init__(message)
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
        object.__setattr__(self, "topic", " ".join(str(self.topic or "").split()))
        object.__setattr__(self, "style", (self.style or "professional").strip())
        object.__setattr__(self, "audience", (self.audience or "").strip())
        object.__setattr__(self, "keywords", parse_keywords(self.keywords))
        validate(self)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["keywords"] = list(self.keywords)
        data["brand"] = self.brand.as_dict() if self.brand else None
        return data


def parse_keywords(value) -> tuple[str, ...]:
    """Accept a list or a string split on commas (ASCII or Chinese) / semicolons / newlines."""
    if isinstance(value, str):
        for sep in "，、;；\n":
            value = value.replace(sep, ",")
        value = value.split(",")
    return unique_items(value)


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
