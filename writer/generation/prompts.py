"""Prompt templates: TOML files in `prompts/`, one per content type.

Each file has a `system` and a `user` string with `{placeholders}`. Loading checks
every template up front: an unknown placeholder, a missing required one, or a
content type without a file raises `PromptError` at load time, never mid-request.
"""
from __future__ import annotations

import string
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from writer.brief import CONTENT_TYPES, Brief
from writer.config import PROJECT_ROOT
from writer.errors import UserError

PROMPTS_DIR = PROJECT_ROOT / "prompts"
REQUIRED = frozenset({"topic", "style", "target_words", "language", "audience", "keywords"})
OPTIONAL = frozenset({"length_unit", "content_type", "brand"})


class PromptError(UserError, ValueError):
    """A template file is broken; the message names the file and the problem."""

    key = "user_errors.prompt"


@dataclass(frozen=True)
class Template:
    content_type: str
    system: str
    user: str


@dataclass(frozen=True)
class PromptSet:
    templates: dict[str, Template]
    shared: dict

    def style_text(self, style: str) -> str:
        return self.shared["styles"].get(style, style)

    def continuation(self, messages: list[dict], text_so_far: str) -> list[dict]:
        """Messages that ask the model to continue `text_so_far` (its own answer)."""
        return [*messages, {"role": "assistant", "content": text_so_far},
                {"role": "user", "content": self.shared["continue"]["instruction"].strip()}]

    def lengthen(self, messages: list[dict], text_so_far: str, *, words: int, target_words: int,
                 language: str) -> list[dict]:
        """Messages that ask for the rest of an article that ended short of its target."""
        instruction = self.shared["lengthen"]["instruction"].format(
            words=words, target_words=target_words, remaining=max(1, target_words - words),
            length_unit=self.shared["length_units"][language],
            language=self.shared["languages"][language])
        return [*messages, {"role": "assistant", "content": text_so_far},
                {"role": "user", "content": instruction.strip()}]

    def outline(self, brief: Brief, sections: int) -> list[dict]:
        """Messages that ask for the plan of a long article (title + sections)."""
        return self.outline_from(self.values(brief), sections)

    def outline_from(self, brief_values: dict, sections: int) -> list[dict]:
        """`outline`, from a brief's placeholder values (`values`)."""
        values = {**brief_values, "sections": sections}
        plan = self.shared["outline"]
        return [{"role": "system", "content": plan["system"].format(**values).strip()},
                {"role": "user", "content": plan["user"].format(**values).strip()}]

    @property
    def long_form_words(self) -> int | None:
        """From this target on, a fixed outline ([fixed_outline]) writes the article
        section by section; None: the default threshold and a model-written outline."""
        fixed = self.shared.get("fixed_outline")
        return int(fixed["long_form_words"]) if fixed else None

    @property
    def heading_in_text(self) -> bool:
        """Whether the engine writes a section's heading into the article ([section]
        heading_in_text: the prompt ends with the heading, the model writes on)."""
        return bool(self.shared["section"].get("heading_in_text"))

    def fixed_outline(self, brief_values: dict, content_type: str, target_words: int) -> str | None:
        """The plan of a long article from [fixed_outline] (a title and numbered
        headings with their lengths, as a model's outline reads), or None."""
        fixed = self.shared.get("fixed_outline")
        headings = fixed.get(content_type) if fixed else None
        if not headings:
            return None
        count = max(2, min(len(headings), round(target_words / int(fixed["words_per_section"]))))
        each = max(1, target_words // count)
        lines = [f"# {brief_values['topic']}", ""]
        lines += [f"{i}. {h.format(**brief_values)} ({each})" for i, h in enumerate(headings[:count], 1)]
        return "\n".join(lines)

    def section(self, brief: Brief, **section) -> list[dict]:
        """Messages that write one section of a long article (`section_from`)."""
        return self.section_from(self.values(brief), brief.content_type, **section)

    def section_from(self, brief_values: dict, content_type: str, *, title: str, outline: str,
                     number: int, count: int, heading: str, section_words: int,
                     previous: str) -> list[dict]:
        """Messages that write one section of a long article, from a brief's placeholder
        values (`values`) and content type."""
        values = {**brief_values, "title": title, "outline": outline, "number": number,
                  "count": count, "heading": heading, "section_words": section_words,
                  "previous": previous or "(nothing yet: this is the first section)"}
        template = self.templates[content_type]
        return [{"role": "system", "content": template.system.format(**values).strip()},
                {"role": "user", "content": self.shared["section"]["user"].format(**values).strip()}]

    def render(self, brief: Brief) -> list[dict]:
        """The chat messages for a brief."""
        template = self.templates[brief.content_type]
        values = self.values(brief)
        return [
            {"role": "system", "content": template.system.format(**values).strip()},
            {"role": "user", "content": template.user.format(**values).strip()},
        ]

    def brand_text(self, kit) -> str:
        """The brand kit's part of a prompt ([brand] in _shared.toml), "" without a kit."""
        if kit is None:
            return ""
        parts = self.shared["brand"]
        lines = [parts["intro"].format(name=kit.name).strip()]
        for name, value in (("voice", kit.voice), ("audience", kit.audience),
                            ("do", kit.do), ("dont", kit.dont),
                            ("banned_words", kit.banned_words),
                            ("required_terms", kit.required_terms), ("facts", kit.facts),
                            ("samples", kit.samples)):
            if not value:
                continue
            if isinstance(value, tuple):
                joiner = "\n\n---\n\n" if name == "samples" else "; "
                value = joiner.join(value)
            lines.append(parts[name].format(value=value).strip())
        return "\n\n" + "\n".join(lines)

    def values(self, brief: Brief) -> dict:
        """The brief's placeholders, as the templates fill them."""
        defaults = self.shared["defaults"]
        return {
            "brand": self.brand_text(brief.brand),
            "topic": brief.topic,
            "style": self.style_text(brief.style),
            "target_words": brief.target_words,
            "language": self.shared["languages"][brief.language],
            "length_unit": self.shared["length_units"][brief.language],
            "audience": brief.audience or defaults["audience"],
            "keywords": ", ".join(brief.keywords) or defaults["keywords"],
            "content_type": brief.content_type.replace("_", " "),
        }


def _placeholders(text: str, where: str) -> set[str]:
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:  # unbalanced braces
        raise PromptError(f"{where}: {exc}") from None
    bad = {f for f in fields if not f.isidentifier()}
    if bad:
        raise PromptError(f"{where}: placeholders must be plain names, got {sorted(bad)}")
    return fields


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PromptError(f"{path.name}: {exc}") from None


def load_prompts(directory: Path = PROMPTS_DIR) -> PromptSet:
    shared = _read_toml(directory / "_shared.toml")
    for section in ("languages", "length_units", "defaults", "styles", "continue", "lengthen",
                    "outline", "section", "brand"):
        if not isinstance(shared.get(section), dict):
            raise PromptError(f"_shared.toml: missing [{section}] table")
    templates = {}
    for content_type in CONTENT_TYPES:
        path = directory / f"{content_type}.toml"
        if not path.is_file():
            raise PromptError(f"no template for content type {content_type!r}: expected {path}")
        data = _read_toml(path)
        parts = {}
        for part in ("system", "user"):
            if not isinstance(data.get(part), str) or not data[part].strip():
                raise PromptError(f"{path.name}: missing the {part!r} text")
            parts[part] = data[part]
        used = _placeholders(parts["system"], path.name) | _placeholders(parts["user"], path.name)
        unknown = used - REQUIRED - OPTIONAL
        if unknown:
            raise PromptError(f"{path.name}: unknown placeholder(s) {sorted(unknown)}; allowed: "
                              f"{sorted(REQUIRED | OPTIONAL)}")
        missing = REQUIRED - used
        if missing:
            raise PromptError(f"{path.name}: missing placeholder(s) {sorted(missing)}")
        templates[content_type] = Template(content_type, parts["system"], parts["user"])
    return PromptSet(templates, shared)


@lru_cache(maxsize=4)
def default_prompts(directory: Path = PROMPTS_DIR) -> PromptSet:
    return load_prompts(directory)
