"""`check`: measure and grade a provider (speed, smoothness, concurrency) beside its price,
run as WRITER_USER (writer/storage/accounts.py `actor_for`), who the saved check records."""
from __future__ import annotations

import json
import sys
import threading

from writer import logs
from writer.cli.output import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, CliError, ask, is_yes, open_store, say
from writer.config import load_settings
from writer.kinds import CheckStatus
from writer.providers.choice import choose_provider, resolve_model
from writer.runs import check as checks
from writer.storage.accounts import actor_for
from writer.storage.usage import require_within_budget


def cmd_check(args) -> int:
    settings = load_settings()
    store = open_store()
    actor = actor_for(store, settings)
    provider = resolve_model(choose_provider(settings, args.provider, args.model))
    plan = checks.Plan(runs=args.runs, prompt_set=args.prompt_set,
                       levels=checks.parse_levels(args.concurrency))
    require_within_budget(store, settings, provider, actor=actor)  # a hard cap: refused first
    guess = checks.estimate(plan, provider, settings, store)
    cost = ("free (local model)" if not guess.paid else "cost unknown (no price)"
            if guess.cost is None else f"at most {guess.cost:.4f} {guess.currency}")
    say(f"checking {provider.label()}: {guess.requests} requests, about "
        f"{guess.input_tokens:,} input + at most {guess.output_tokens:,} output tokens · {cost}")
    if guess.paid and provider.kind != "local" and not args.yes:
        if not is_yes(ask("run the check? [y/N] ", "not sending requests to a paid provider "
                                                   "without confirmation: add --yes")):
            raise CliError("not started", EXIT_FAILED)
    check = checks.Check(settings, provider, plan, actor=actor)
    report, interrupted = _measure(check)
    report = logs.redact_data(report)  # printed as saved: no key or URL credential
    report_id = checks.save(store, report, author=actor.name)
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(format_check(report))
    say(f"saved as check #{report_id}")
    if interrupted or report["status"] == CheckStatus.CANCELLED:
        say("cancelled: the figures above cover what was measured")
        return EXIT_INTERRUPTED
    return EXIT_FAILED if report["status"] == CheckStatus.FAILED else EXIT_OK


def _measure(check: checks.Check) -> tuple[dict, bool]:
    """Run the check in a thread, its phase on a terminal; Ctrl-C cancels it and keeps
    what was measured. Returns (report, interrupted)."""
    done = threading.Event()
    outcome: dict = {}

    def work() -> None:
        try:
            outcome["report"] = check.run()
        except BaseException as exc:  # a bug: reported below in one line
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="writer-check", daemon=True).start()
    tty = sys.stderr.isatty()
    interrupted = False
    try:
        while not done.wait(0.3):
            if tty:
                sys.stderr.write(f"\r\x1b[K[{check.done}/{check.total}] {check.phase}")
                sys.stderr.flush()
    except KeyboardInterrupt:
        interrupted = True
        check.cancel(actor=check.actor)
        if not done.wait(30):
            raise CliError("cancelled, but a request did not close within 30 s; nothing saved",
                           EXIT_INTERRUPTED) from None
    if tty:
        sys.stderr.write("\r\x1b[K")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["report"], interrupted


CHECK_LABELS = {"connect_ms": "connection set-up", "ttft_ms": "time to first text (p95)",
                "interruption_rate": "interruptions (gaps > 5 s)", "itl_cv": "inter-token CV"}


def _ms(value) -> str:
    return "-" if value is None else f"{value:,.0f} ms" if value >= 10 else f"{value:.1f} ms"


def format_check(report: dict) -> str:
    """The report as a table for a terminal."""
    grades = report.get("grades", {})
    lines = [f"provider check: {report['provider']} · {report.get('model') or '?'}"
             + (f" ({report['base_url']})" if report.get("base_url") else "")
             + f" · {report['runs']} runs, {report['prompt_set']} prompts · {report['status']}"]
    price = report.get("price")
    if price is None:
        lines.append("price: unknown (add one on the Settings page)")
    elif price["currency"] == "local":
        lines.append("price: free (local model)")
    else:
        lines.append(f"price: {price['input_per_1m']:g} / {price['output_per_1m']:g} "
                     f"{price['currency']} per 1M input / output tokens")
    lines.append("")
    lines.append(f"{'metric':<24} {'value':<44} {'grade':<10} pass / excellent")
    for name, value, key, thresholds in _rows(report):
        lines.append(f"{name:<24} {value:<44} {grades.get(key, '') if key else '':<10} "
                     f"{thresholds}")
    usage = report.get("usage") or {}
    cost = usage.get("cost")
    lines.append("")
    lines.append(f"this check: {usage.get('input_tokens', 0):,} input + "
                 f"{usage.get('output_tokens', 0):,} output tokens · "
                 + ("cost unknown" if cost is None else "free" if usage.get("currency") == "local"
                    else f"{cost:.4f} {usage.get('currency')}")
                 + f" · {report.get('duration_s', 0):.1f} s")
    for error in report.get("errors", [])[:5]:
        lines.append(f"note: {error}")
    return "\n".join(lines)


def _rows(report: dict) -> list[tuple[str, str, str | None, str]]:
    """(metric, value, grade key, thresholds) of each line of the table."""
    ms = _ms
    rows = []
    connect = report.get("connect")
    rows.append(("connection set-up", "-" if report.get("connect_ms") is None else
                 f"{ms(report['connect_ms'])} (p95 {ms(connect['p95'])}, max {ms(connect['max'])})"
                 if connect else ms(report.get("connect_ms")), "connect_ms", "< 2000 / < 1000 ms"))
    ttft = report.get("ttft_ms")
    rows.append(("time to first text", f"p50 {ms(ttft['p50'])} · p95 {ms(ttft['p95'])} · "
                 f"max {ms(ttft['max'])}" if ttft else "-", "ttft_ms", "p95 < 3000 / < 1500 ms"))
    rows.append(("inter-token interval", f"mean {ms(report.get('itl_mean_ms'))} · p95 "
                 f"{ms(report.get('itl_p95_ms'))} · longest {ms(report.get('max_gap_ms'))}",
                 None, ""))
    cv = report.get("itl_cv")
    rows.append(("inter-token CV", "-" if cv is None else f"{cv:.2f}", "itl_cv", "< 0.5 / < 0.3"))
    rate = report.get("interruption_rate")
    rows.append(("interruptions (> 5 s)", "-" if rate is None else
                 f"{report['interruptions']} ({rate * 100:.2f} %)", "interruption_rate",
                 "< 1 % / < 0.1 %"))
    speed = report.get("tokens_per_s")
    rows.append(("tokens/s", "-" if speed is None else f"{speed:.1f}", None, ""))
    for level, result in (report.get("concurrency") or {}).items():
        passing, excellent = checks.level_thresholds(int(level))
        rows.append((f"{level} streams at once", f"{result['success_rate'] * 100:.0f} % ok · TTFT "
                     f"p95 {ms(result['ttft_p95_ms'])}", f"concurrency_{level}",
                     f">= {passing * 100:.0f} % / >= {excellent * 100:.0f} %"))
    return rows
