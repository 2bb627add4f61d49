"""Length control benchmark: does every article land within 0.8–1.2× its target?

Runs a fixed set of 24 briefs (Chinese and English, all four content types, targets
100 to 3,000) through the real Job → engine → store path and prints, per brief: the
target, the final words, the ratio, the rounds (requests that wrote text), whether it
ends on a sentence boundary, the seams (continuations joined to the text before them)
and whether any repeats the text before it; then the share in range. Providers:

  local     the bundled SmolLM2-135M (English briefs)
  local-zh  the bundled Gemma 3 270M (Chinese briefs; also reports the CJK share)
  local-gemma-en  Gemma 3 270M on the English briefs (to compare with SmolLM2 there)
  early   the loopback provider scripted to stop at ~45 % of what it is asked
  ramble  the loopback provider scripted to write ~300 % of what it is asked
  free    like `ramble`, with length control off (the baseline it is measured against)

    .venv/bin/python scripts/bench_length.py                 # early, ramble, free
    .venv/bin/python scripts/bench_length.py --providers local,early,ramble,free
    .venv/bin/python scripts/bench_length.py --providers local-zh --max-target 300
    .venv/bin/python scripts/bench_length.py --providers local-zh --targets 1200 --keep DIR

Targets: ≥ 90 % in range for each provider with length control, none ending
mid-sentence, no duplicated text at any seam; a Chinese article's CJK share ≥ 0.8.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the loopback provider lives with the tests
os.environ["WRITER_NO_DOTENV"] = "1"

from fake_openai import FakeOpenAI  # noqa: E402
from scripted_writer import ScriptedWriter  # noqa: E402
from writer.brief import Brief  # noqa: E402
from writer.config import load_settings  # noqa: E402
from writer.generation.counting import count_words  # noqa: E402
from writer.generation.length import sentence_ends  # noqa: E402
from writer.generation.seam import repeated_at  # noqa: E402
from writer.providers.choice import local_provider  # noqa: E402
from writer.runs.job import Job  # noqa: E402

BRIEFS = [  # (language, content type, target, topic)
    ("en", "social_post", 100, "Launch day for our reusable coffee cup"),
    ("en", "marketing_copy", 150, "Spring sale on noise-cancelling headphones"),
    ("en", "product_description", 200, "A one-button espresso machine for small offices"),
    ("en", "blog", 300, "Why streaming output matters for content teams"),
    ("en", "marketing_copy", 400, "A budgeting app for freelancers"),
    ("en", "product_description", 600, "Ergonomic standing desk with memory presets"),
    ("en", "blog", 800, "How to plan a month of social media posts"),
    ("en", "social_post", 250, "Five tips for better product photos"),
    ("en", "blog", 1200, "A beginner's guide to email marketing metrics"),
    ("en", "blog", 1600, "Building a brand voice that customers remember"),
    ("en", "marketing_copy", 2200, "Annual report: how our community grew"),
    ("en", "blog", 3000, "The complete guide to launching a product online"),
    ("zh", "social_post", 100, "环保咖啡杯今日首发"),
    ("zh", "marketing_copy", 150, "降噪耳机春季促销"),
    ("zh", "product_description", 200, "一键清洗的意式咖啡机"),
    ("zh", "blog", 300, "为什么流式输出对内容团队很重要"),
    ("zh", "marketing_copy", 400, "面向自由职业者的记账应用"),
    ("zh", "product_description", 600, "带记忆功能的升降办公桌"),
    ("zh", "blog", 800, "如何规划一个月的社交媒体内容"),
    ("zh", "social_post", 250, "拍好产品照片的五个技巧"),
    ("zh", "blog", 1200, "电子邮件营销指标入门"),
    ("zh", "blog", 1600, "打造让顾客记住的品牌声音"),
    ("zh", "marketing_copy", 2200, "年度报告：我们的社区如何成长"),
    ("zh", "blog", 3000, "线上发布新产品的完整指南"),
]
PROVIDERS = ("local", "local-zh", "local-gemma-en", "early", "ramble", "free")
# local-gemma-en: Gemma (the Chinese model) on the English briefs, with its document
# prompts, to compare with SmolLM2 there (which one should write English offline).
LOCAL_LANGUAGE = {"local": "en", "local-zh": "zh", "local-gemma-en": "en"}


def ends_on_a_sentence(text: str) -> bool:
    """The article ends where the engine may end one: a sentence mark (closing quotes
    included) or a finished Markdown list item."""
    stripped = text.rstrip()
    ends = sentence_ends(stripped + "\n", max(0, len(stripped) - 300), final=True)
    return bool(stripped) and any(end >= len(stripped) for end in ends)


def cjk_share(text: str) -> float:
    """CJK ideographs among the letters (CJK + Latin); 1.0 for a text with none."""
    cjk = sum("\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" for ch in text)
    latin = sum(ch.isascii() and ch.isalpha() for ch in text)
    return cjk / (cjk + latin) if cjk + latin else 1.0


def run(provider_name: str, briefs, db_dir: Path, keep: Path | None = None) -> list[dict]:
    os.environ["WRITER_DB"] = str(db_dir / f"{provider_name}.db")
    fake = None
    if provider_name in LOCAL_LANGUAGE:
        for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "WRITER_MODEL"):
            os.environ.pop(name, None)
        provider = local_provider("zh" if provider_name == "local-gemma-en" else None)
        if provider_name == "local-gemma-en":  # keep Gemma for an English brief
            import writer.runs.job as job_module
            job_module.for_language = lambda provider, language: provider
    else:
        mode = "ramble" if provider_name in ("ramble", "free") else "early"
        fake = FakeOpenAI(responder=ScriptedWriter(mode)).start()
        os.environ.update(OPENAI_API_KEY="sk-bench", OPENAI_BASE_URL=fake.base_url,
                          WRITER_MODEL="gpt-4o-mini")
        provider = None
    results = []
    try:
        for language, content_type, target, topic in briefs:
            if LOCAL_LANGUAGE.get(provider_name, language) != language:
                continue
            brief = Brief(topic=topic, content_type=content_type, target_words=target,
                          language=language)
            job = Job(brief, load_settings(), provider=provider,
                      length_control=provider_name != "free")
            started = time.monotonic()
            events = list(job.run())
            finished = events[-1]
            text = job.text
            words = count_words(text)
            results.append({
                "provider": provider_name, "language": language, "type": content_type,
                "target": target, "words": words, "ratio": words / target,
                "rounds": finished.length_rounds, "status": finished.status,
                "sentence_end": ends_on_a_sentence(text),
                "seams": len(job.generation.seams),
                "seam_repeat": repeated_at(text, job.generation.seams),
                "seconds": time.monotonic() - started, "cjk": cjk_share(text),
            })
            r = results[-1]
            if keep:
                keep.mkdir(parents=True, exist_ok=True)
                (keep / f"{provider_name}-{language}-{content_type}-{target}.md").write_text(
                    text, encoding="utf-8")
            print(f"{provider_name:<8} {language} {content_type:<20} {target:>5} {words:>6} "
                  f"{r['ratio']:>6.2f} {r['rounds']:>6} {'yes' if r['sentence_end'] else 'NO':>8} "
                  f"{r['seams']:>5} {'REPEAT' if r['seam_repeat'] else 'clean':>6} "
                  f"{r['seconds']:>7.1f}s {r['cjk']:>5.2f}",
                  flush=True)
    finally:
        if fake:
            fake.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--providers", default="early,ramble,free",
                        help=f"comma-separated, from: {', '.join(PROVIDERS)}")
    parser.add_argument("--max-target", type=int, default=None,
                        help="only briefs with targets up to this (a reduced, quicker set)")
    parser.add_argument("--targets", default="",
                        help="only briefs with these targets (comma-separated, e.g. 1200,2200)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="write each article to this folder (to read them)")
    args = parser.parse_args()
    targets = {int(t) for t in args.targets.split(",") if t.strip()}
    briefs = [b for b in BRIEFS if (args.max_target is None or b[2] <= args.max_target)
              and (not targets or b[2] in targets)]
    names = [n.strip() for n in args.providers.split(",") if n.strip()]
    unknown = set(names) - set(PROVIDERS)
    if unknown:
        parser.error(f"unknown provider(s): {', '.join(sorted(unknown))}")
    print(f"{'provider':<7} lang {'type':<20} {'target':>5} {'words':>6} {'ratio':>6} "
          f"{'rounds':>6} {'sentence':>8} {'seams':>5} {'repeat':>6} {'time':>8} {'cjk':>5}")
    summary = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            results = run(name, briefs, Path(tmp), args.keep)
            in_range = sum(0.8 <= r["ratio"] <= 1.2 for r in results)
            mid = sum(not r["sentence_end"] for r in results)
            seams = sum(bool(r["seam_repeat"]) for r in results)
            summary.append(f"{name:<7} {in_range}/{len(results)} in 0.8–1.2× "
                           f"({in_range / len(results):.0%}), {mid} ending mid-sentence, "
                           f"{seams} with a repeated seam, median ratio "
                           f"{sorted(r['ratio'] for r in results)[len(results) // 2]:.2f}, "
                           f"total {sum(r['seconds'] for r in results):.0f} s, lowest CJK share "
                           f"of a Chinese article {min((r['cjk'] for r in results if r['language'] == 'zh'), default=float('nan')):.2f}")
    print("\n" + "\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
