"""A scripted "model" for the loopback provider (tests/fake_openai.py): it reads what a
request asks for — an article of about N words, the rest of one, an outline, one
section — and answers in the request's language with a chosen bias:

    ScriptedWriter("early")   writes ~45 % of what is asked, then stops (finish stop)
    ScriptedWriter("ramble")  writes ~300 % of what is asked (or until disconnected)
    ScriptedWriter("exact")   writes about what is asked

Answers to a "continue"/"lengthen" request start by repeating the last few words of
the text so far, as real models often do, so seams are exercised. Used by
tests/generation/test_length.py and scripts/bench_length.py (FakeOpenAI(responder=...)).
"""
from __future__ import annotations

import itertools
import re

from fake_openai import Reply

EN_SENTENCES = [
    "Readers decide within seconds whether an article deserves their attention.",
    "A clear promise in the first paragraph keeps them reading.",
    "Short paragraphs and concrete examples make the argument easy to follow.",
    "Every claim should be backed by a number, a quote or a story.",
    "Marketing teams that publish regularly build trust with their audience.",
    "The best headlines describe a benefit rather than a feature.",
    "Customers remember how a product made them feel, not its specification sheet.",
    "A strong call to action tells the reader exactly what to do next.",
    "Testing two versions of a landing page often reveals surprising preferences.",
    "Consistency in tone matters as much as the facts themselves.",
]
ZH_SENTENCES = [
    "读者往往在几秒钟内决定是否继续阅读一篇文章。",
    "开头一段给出清晰的承诺，能让读者愿意读下去。",
    "短段落和具体的例子让论点更容易理解。",
    "每一个观点都应该有数据、引语或故事来支撑。",
    "坚持定期发布内容的营销团队更容易赢得信任。",
    "好的标题描述的是用户得到的好处，而不是产品参数。",
    "顾客记住的是产品带给他们的感受，而不是说明书。",
    "有力的行动号召会明确告诉读者下一步该做什么。",
]
FACTORS = {"early": 0.45, "ramble": 3.0, "exact": 1.0}


def _count(text: str) -> int:
    from writer.generation.counting import count_words

    return count_words(text)


class ScriptedWriter:
    def __init__(self, mode: str = "exact", chunk_chars: int = 24, chunk_delay: float = 0.0):
        self.mode = mode
        self.factor = FACTORS[mode]
        self.chunk_chars = chunk_chars
        self.chunk_delay = chunk_delay
        self._sentence = itertools.count()
        self.asked: list[str] = []  # what each request asked for: article/lengthen/outline/...
        self.replies: list[Reply] = []  # what it would have sent in full, per request

    # -- what was asked -------------------------------------------------------------------
    def __call__(self, request: dict) -> Reply:
        messages = request.get("messages") or []
        last = str(messages[-1].get("content", "")) if messages else ""
        everything = "\n".join(str(m.get("content", "")) for m in messages)
        chinese = "Simplified Chinese" in everything
        if last.startswith("Plan a ") or "Answer in exactly this Markdown form" in last:
            self.asked.append("outline")
            return self._reply(self._outline(last, chinese))
        if "Write section" in last:
            self.asked.append("section")
            heading = re.search(r'Write section \d+ of \d+ now: "(.+?)"', last)[1]
            words = int(re.search(r"about (\d+)", last.split("now:", 1)[1])[1])
            return self._reply(f"## {heading}\n\n" + self._prose(words, chinese))
        if messages and messages[-2:-1] and messages[-2].get("role") == "assistant":
            so_far = str(messages[-2]["content"])
            more = re.search(r"about (\d+) more", last)
            self.asked.append("lengthen" if more else "continue")
            words = int(more[1]) if more else 60
            repeat = " ".join(so_far.split()[-3:]) if not chinese else so_far[-6:]
            return self._reply(repeat + self._prose(words, chinese, start_space=not chinese))
        self.asked.append("article")
        target = re.search(r"about (\d+)", last)
        words = int(target[1]) if target else 300
        return self._reply(f"# {'一篇关于写作的文章' if chinese else 'An article about writing'}\n\n"
                           + self._prose(words, chinese))

    # -- answers --------------------------------------------------------------------------
    def _reply(self, text: str, finish: str = "stop") -> Reply:
        reply = Reply(text=text, chunk_chars=self.chunk_chars, chunk_delay=self.chunk_delay,
                      finish_reason=finish, usage=None)
        self.replies.append(reply)
        return reply

    def _prose(self, words: int, chinese: bool, start_space: bool = False) -> str:
        wanted = max(8, int(words * self.factor))
        pool = ZH_SENTENCES if chinese else EN_SENTENCES
        out, count, in_paragraph = [], 0, 0
        while count < wanted:
            sentence = pool[next(self._sentence) % len(pool)]
            out.append(sentence)
            count += _count(sentence)
            in_paragraph += 1
            if in_paragraph == 4 and count < wanted:
                out.append("\n\n")
                in_paragraph = 0
        joiner = "" if chinese else " "
        text = joiner.join(out).replace(" \n\n ", "\n\n")
        return (" " + text if start_space else text) + "\n"

    @staticmethod
    def _outline(request: str, chinese: bool) -> str:
        sections = int(re.search(r"with (\d+) sections", request)[1])
        total = int(re.search(r"about (\d+)", request)[1])
        heading = "第{}部分" if chinese else "Part {} of the story"
        lines = ["# " + ("长文标题" if chinese else "A long article")]
        lines += [f"{i}. {heading.format(i)} ({total // sections})" for i in range(1, sections + 1)]
        return "\n".join(lines) + "\n"
