"""An article's parts, for revising one of them: by level-2 headings, else by paragraphs.

Pure text work (no engine, no SDK), so `python -m writer versions ID --sections` stays a
cheap command."""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Section:
    number: int  # 1-based
    title: str  # its heading, or the paragraph's first words
    start: int  # character offsets in the article
    end: int

    def text(self, content: str) -> str:
        return content[self.start:self.end]


def sections(content: str) -> list[Section]:
    """The article's parts: by level-2 headings when it has them (the text before the
    first one is part 1), else by paragraphs (blank-line separated)."""
    headings = [m.start() for m in re.finditer(r"(?m)^##\s+\S", content)]
    if headings:
        starts = ([0] if content[:headings[0]].strip() else []) + headings
    else:
        starts = [m.start() for m in re.finditer(r"(?:^|\n\s*\n)(?=\S)", content)]
        starts = [s if content[s] not in "\n" else s + len(content[s:]) - len(content[s:].lstrip())
                  for s in starts]
    parts = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(content)
        while end > start and content[end - 1] in " \t\n":
            end -= 1
        first = content[start:end].strip().splitlines()[0] if content[start:end].strip() else ""
        title = re.sub(r"^#+\s*", "", first)
        parts.append(Section(len(parts) + 1, title[:60] + ("…" if len(title) > 60 else ""),
                             start, end))
    return parts
