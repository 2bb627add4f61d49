"""`python -m writer <command>`: the article goes to stdout as it streams; progress,
stats and messages go to stderr. Failures print one line, never a traceback.

Exit codes: 0 completed · 1 generation failed · 2 bad input or settings ·
3 truncated (the row can be continued) · 130 interrupted (partial saved).
"""
from __future__ import annotations

import argparse
import sys
import time

from .brief import CONTENT_TYPES, LANGUAGES, Brief, BriefError
from .config import SettingsError, load_settings
from .costs import PriceFileError
from .engine import Delta, Finished, Notice
from .errors import LocalModelError
from .jobs import Job, JobError
from .prompts import PromptError
from .providers import ProviderChoiceError, choose_provider

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TRUNCATED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other bad input
        raise CliError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m writer", description="AI writing assistant")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    write = sub.add_parser("write", help="write one article and save it")
    write.add_argument("--topic", required=True)
    write.add_argument("--type", dest="content_type", default="blog",
                       help=f"one of: {', '.join(CONTENT_TYPES)}")
    write.add_argument("--style", default="professional",
                       help="professional, casual, persuasive, storytelling, or free text")
    write.add_argument("--length", dest="target_words", type=int, default=800,
                       help="target words (CJK characters count one each), 50..20000")
    write.add_argument("--language", default="zh", help=f"one of: {', '.join(LANGUAGES)}")
    write.add_argument("--audience", default="")
    write.add_argument("--keywords", default="", help="comma-separated")
    write.add_argument("--model", default=None, help="overrides WRITER_MODEL")
    write.add_argument("--provider", default=None,
                       help="local (the bundled demo model) or the configured provider's name; "
                            "default: the configured provider if OPENAI_API_KEY is set, else local")
    write.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    cont = sub.add_parser("continue", help="continue a stopped, truncated or failed article")
    cont.add_argument("id", type=int)
    cont.add_argument("--provider", default=None)
    cont.add_argument("--model", default=None)
    cont.add_argument("--quiet", action="store_true")
    return parser


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_write(args) -> int:
    brief = Brief(topic=args.topic, content_type=args.content_type, style=args.style,
                  target_words=args.target_words, language=args.language,
                  audience=args.audience, keywords=args.keywords)
    settings = load_settings()
    job = Job(brief, settings, provider=choose_provider(settings, args.provider, args.model))
    if job.brief.language != brief.language:
        _say(f"note: {job.provider.name} writes {job.brief.language} only; the article will be in "
             f"{job.brief.language}")
    _say(f"writing with {job.provider.label()} · target {brief.target_words} words")
    return _stream(job, args.quiet)


def cmd_continue(args) -> int:
    settings = load_settings()
    provider = choose_provider(settings, args.provider, args.model) if (
        args.provider or args.model) else None
    job = Job.continuing(args.id, settings, provider=provider)
    _say(f"continuing #{args.id} ({job.words}/{job.brief.target_words} words) with "
         f"{job.provider.label()}")
    return _stream(job, args.quiet)


def _stream(job: Job, quiet: bool) -> int:
    """Print a job's text to stdout as it arrives; notices and stats to stderr."""
    show_progress = not quiet and sys.stderr.isatty()
    last_progress = 0.0
    announced = None
    events = job.run()
    try:
        for event in events:
            if isinstance(event, Delta):
                sys.stdout.write(event.text)
                sys.stdout.flush()
                now = time.monotonic()
                if show_progress and now - last_progress > 0.2:
                    sys.stderr.write(f"\x1b7\r[{job.words}/{job.brief.target_words}]\x1b8")
                    last_progress = now
            elif isinstance(event, Notice) and (event.kind, event.attempt) != announced:
                announced = (event.kind, event.attempt)  # notices repeat; say each once
                if event.kind == "retrying":
                    _say(f"{event.message}; retrying in {event.wait_s:.0f} s "
                         f"(attempt {event.attempt} of {event.max_attempts})")
                else:
                    _say(event.message)
            elif isinstance(event, Finished):
                return _report(job, event)
    except KeyboardInterrupt:
        events.close()  # closes the provider connection, then saves the partial text
        _say(f"\ninterrupted: partial article saved as #{job.article_id} ({job.words} words); "
             f"resume it with: python -m writer continue {job.article_id}")
        return EXIT_INTERRUPTED
    return EXIT_FAILED


def _report(job, finished: Finished) -> int:
    sys.stdout.write("\n")
    sys.stdout.flush()
    usage, metrics = finished.usage, finished.metrics
    cost = ("unpriced" if job.cost is None else "0 (local model)" if job.currency == "local"
            else f"{job.cost:.6f} {job.currency}")
    ttft = f"{metrics.ttft_ms:.0f} ms" if metrics.ttft_ms is not None else "-"
    rate = metrics.tokens_per_s(usage.output_tokens)
    _say(f"#{job.article_id} {finished.status} · {job.words}/{job.brief.target_words} words · "
         f"tokens {usage.input_tokens} in / {usage.output_tokens} out ({usage.source}) · "
         f"cost {cost} · first token {ttft} · total {metrics.duration_ms / 1000:.1f} s · "
         f"{rate or 0:.1f} tokens/s")
    if finished.status == "completed":
        return EXIT_OK
    if finished.status == "stopped":
        return EXIT_INTERRUPTED
    _say(f"error: {finished.error}")
    if finished.status == "truncated":
        _say(f"continue it with: python -m writer continue {job.article_id}")
    return EXIT_TRUNCATED if finished.status == "truncated" else EXIT_FAILED


COMMANDS = {"write": cmd_write, "continue": cmd_continue}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except CliError as exc:
        _say(f"error: {exc}")
        return exc.code
    except (BriefError, SettingsError, PromptError, PriceFileError, ProviderChoiceError,
            LocalModelError, JobError) as exc:
        _say(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_FAILED
