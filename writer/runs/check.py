"""The provider check: measure a provider the way a team should choose one, grade it on
explicit thresholds, and show it beside its price.

Every request goes through the one engine (`engine.Generation`, which times every
chunk), with retries, resumes and failover off so nothing hides a failure, and a
stream-health record of its own so a bad provider under test never switches the
team's articles to non-streamed answers. Only the connection set-up is timed on a
socket of its own (TCP, plus TLS for https). It measures:

- connection set-up to the base URL, `runs` times: median, p95, max;
- time to first visible text over `runs` requests whose prompts have different
  lengths (the prompt set pads the question with 0–800 or 1,000–6,000 tokens);
- one long streamed answer: inter-token interval mean, p95, coefficient of
  variation, the longest gap, interruptions (gaps over 5 s) and their rate, tokens/s;
- for each concurrency level K: exactly K simultaneous streams (started together,
  never more, never retried); a stream succeeds when it ends with a finish reason;
  success rate and TTFT p95 under that load.

Grades (fail / pass / excellent) follow GRADES and SUCCESS_GRADES (check_grades.py). A check can be
cancelled at any time (every open request is closed). Reports are saved in
`provider_checks` with a timestamp and who ran it (`author`), so a relay getting
worse shows over time; cancelling one is for who ran it or an admin (AccessDenied).
Prompts are data: prompts/_check.toml. Pure Python, no Streamlit.
"""
from __future__ import annotations

import socket
import ssl
import statistics as stats
import threading
import time
import tomllib
from dataclasses import dataclass
from urllib.parse import urlparse

from writer import logs
from writer.access import Actor
from writer.config import PROJECT_ROOT, Settings
from writer.errors import UserError
from writer.generation.counting import estimate_message_tokens, estimate_tokens
from writer.generation.engine import Generation, Request
from writer.generation.events import Finished
from writer.generation.length import _samples
from writer.generation.metrics import StreamHealth, percentile
from writer.generation.plan import PromptPlan
from writer.generation.retry import RetryPolicy
from writer.kinds import CheckStatus, ErrorKind, Status
from writer.providers.base import Provider
from writer.providers.http import openai_client
from writer.runs.check_grades import (  # noqa: F401
    GRADES,
    SUCCESS_GRADES,
    grade,
    grade_success,
    grade_value,
    level_thresholds,
    summary,
)
from writer.runs.registry import acting, shared
from writer.storage.checks import history, latest, save  # noqa: F401  (checks.save, …)
from writer.storage.prices import price_table
from writer.storage.store import Store, require_author, utc_now
from writer.storage.usage import require_within_budget

CHECK_PROMPTS = PROJECT_ROOT / "prompts" / "_check.toml"
OPENAI_URL = "https://api.openai.com/v1"
INTERRUPTION_S = 5.0  # a gap longer than this in a stream is an interruption
MAX_LEVEL = 200
MAX_LEVELS = 6
MAX_RUNS = 50
DEFAULT_LEVELS = (10,)

NO_RETRY = RetryPolicy(max_retries=0, max_total_wait_s=0.0, max_resumes=0,
                       fallback_after=10 ** 9)


class CheckError(UserError, ValueError):
    """The check cannot start; the message is one line that says why."""

    key = "user_errors.check"


@dataclass(frozen=True)
class Plan:
    runs: int = 5
    prompt_set: str = "short"
    levels: tuple[int, ...] = DEFAULT_LEVELS
    long_answer: bool = True

    def __post_init__(self):
        if not 1 <= self.runs <= MAX_RUNS:
            raise CheckError(f"runs must be 1 to {MAX_RUNS}, not {self.runs}")
        if self.prompt_set not in prompts()["prompt_sets"]:
            raise CheckError(f"unknown prompt set {self.prompt_set!r}; use "
                             f"{' or '.join(prompts()['prompt_sets'])}")
        if len(self.levels) > MAX_LEVELS or any(not 1 <= k <= MAX_LEVEL for k in self.levels):
            raise CheckError(f"concurrency levels must be 1 to {MAX_LEVEL} streams, at most "
                             f"{MAX_LEVELS} levels, not {list(self.levels)}")

    @property
    def steps(self) -> int:
        return 2 * self.runs + int(self.long_answer) + sum(self.levels)


def parse_levels(text: str) -> tuple[int, ...]:
    """"10,50,100" → (10, 50, 100); "" or "0" → () (no concurrency test)."""
    levels = []
    for part in (text or "").replace("，", ",").split(","):
        part = part.strip()
        if not part or part == "0":
            continue
        if not part.isdigit():
            raise CheckError(f"concurrency levels are whole numbers like 10,50,100, not {part!r}")
        levels.append(int(part))
    return tuple(sorted(set(levels)))


def prompts() -> dict:
    with open(CHECK_PROMPTS, "rb") as fh:
        return tomllib.load(fh)


def _context(tokens: int) -> str:
    """About `tokens` tokens (cl100k) of sample text."""
    if tokens <= 0:
        return ""
    words = _samples()["en"].split()
    per_word = estimate_tokens(" ".join(words)) / len(words)
    wanted = int(tokens / per_word)
    return " ".join((words * (wanted // len(words) + 1))[:wanted])


def _messages(question: str, context_tokens: int = 0) -> list[dict]:
    data = prompts()
    context = _context(context_tokens)
    user = f"Background text (for context only):\n{context}\n\n{question}" if context else question
    return [{"role": "system", "content": data["system"]}, {"role": "user", "content": user}]


def requests_of(plan: Plan) -> list[tuple[list[dict], int]]:
    """Every request the plan sends: (messages, max_tokens)."""
    data = prompts()
    sizes = data["prompt_sets"][plan.prompt_set]
    found = [(_messages(data["ttft"]["question"], sizes[i % len(sizes)]),
              data["ttft"]["max_tokens"]) for i in range(plan.runs)]
    if plan.long_answer:
        found.append((_messages(data["long_answer"]["question"]), data["long_answer"]["max_tokens"]))
    concurrent = (_messages(data["concurrency"]["question"]), data["concurrency"]["max_tokens"])
    found += [concurrent] * sum(plan.levels)
    return found


@dataclass
class Estimate:
    requests: int
    input_tokens: int
    output_tokens: int  # at most: every answer at its max_tokens
    cost: float | None
    currency: str | None

    @property
    def paid(self) -> bool:
        return self.currency != "local"


def estimate(plan: Plan, provider: Provider, settings: Settings, store: Store) -> Estimate:
    sent = requests_of(plan)
    input_tokens = sum(estimate_message_tokens(messages) for messages, _ in sent)
    output_tokens = sum(max_tokens for _, max_tokens in sent)
    price = _price(provider, settings, store)
    if provider.kind == "local":
        return Estimate(len(sent), input_tokens, output_tokens, 0.0, "local")
    if price is None:
        return Estimate(len(sent), input_tokens, output_tokens, None, None)
    return Estimate(len(sent), input_tokens, output_tokens,
                    price.cost(input_tokens, output_tokens), price.currency)


def _price(provider: Provider, settings: Settings, store: Store):
    return price_table(settings.prices_file, store.price_edits()).lookup(provider.model,
                                                                         provider.name)


# -- measuring ------------------------------------------------------------------------

def connect_once(base_url: str | None, timeout_s: float = 10.0) -> float:
    """Seconds to open a TCP connection to the base URL's host (and finish the TLS
    handshake for https). Raises OSError when it cannot."""
    url = urlparse(base_url or OPENAI_URL)
    secure = url.scheme == "https"
    port = url.port or (443 if secure else 80)
    started = time.perf_counter()
    sock = socket.create_connection((url.hostname, port), timeout=timeout_s)
    try:
        if secure:
            context = ssl.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=url.hostname)
        return time.perf_counter() - started
    finally:
        sock.close()


class Check:
    """One check of one provider: `run()` in the foreground (CLI), or `start()` below
    on a thread (the Providers page). `done` / `total` steps and `phase` tell the
    progress; `cancel()` closes every open request."""

    def __init__(self, settings: Settings, provider: Provider, plan: Plan = Plan(), *,
                 actor: Actor | None = None):
        self.actor = acting(settings, actor)  # who runs it (registry.acting)
        require_within_budget(None, settings, provider, actor=self.actor)  # a hard cap: refused
        self.settings, self.provider, self.plan = settings, provider, plan
        self.total = plan.steps
        self.done = 0
        self.phase = "connect"
        self.cancelled = False
        self.report: dict | None = None
        self.error: str | None = None
        self.finished = threading.Event()
        self._live: set[Generation] = set()
        self._lock = threading.Lock()
        self.saved_id: int | None = None
        self.usage = [0, 0]  # input, output tokens
        self.started_at = time.monotonic()

    # -- control --------------------------------------------------------------
    def cancel(self, *, actor: Actor) -> None:
        require_author(actor, self.actor.name, "cancel the provider check")
        self.cancelled = True
        with self._lock:
            live = list(self._live)
        for generation in live:
            generation.cancel()

    # -- the check --------------------------------------------------------------
    def run(self) -> dict:
        data = prompts()
        provider, plan = self.provider, self.plan
        report: dict = {"provider": provider.name, "model": provider.model,
                        "base_url": logs.redact(provider.base_url) or (
                            None if provider.kind == "local" else OPENAI_URL),
                        "created_at": utc_now(), "runs": plan.runs,
                        "prompt_set": plan.prompt_set, "levels": list(plan.levels),
                        "errors": []}
        try:
            self._connect(report)
            if provider.kind == "local" and not self.cancelled:
                self._generate(_messages(data["ttft"]["question"]), 4)  # loads the model
            elif not self.cancelled:  # the client's one-off set-up (~90 ms) is not the provider's
                openai_client(provider.base_url, provider.api_key, provider.timeout_s,
                              provider.idle_timeout_s)
            self._ttft(report, data)
            if plan.long_answer:
                self._long_answer(report, data)
            self._concurrency(report, data)
        finally:
            self.phase = "done"
            answered = report.get("ttft_ms") is not None or \
                report.get("tokens_per_s") is not None or \
                any(level["succeeded"] for level in report.get("concurrency", {}).values())
            report["status"] = CheckStatus.CANCELLED if self.cancelled else \
                CheckStatus.COMPLETED if answered else CheckStatus.FAILED
            report["grades"] = grade(report)
            report["price"] = self._price_info()
            report["usage"] = self._usage_info(report["price"])
            report["duration_s"] = round(time.monotonic() - self.started_at, 2)
            self.report = report
        return report

    def _step(self, phase: str, count: int = 1) -> None:
        with self._lock:  # up to 200 streams end at once
            self.phase = phase
            self.done = min(self.total, self.done + count)

    def _connect(self, report: dict) -> None:
        if self.provider.kind == "local":
            report["connect_ms"] = None  # in this process: nothing to connect to
            self._step("connect", self.plan.runs)
            return
        samples = []
        for _ in range(self.plan.runs):
            if self.cancelled:
                return
            try:
                samples.append(connect_once(self.provider.base_url,
                                            min(self.provider.timeout_s, 15.0)) * 1000)
            except OSError as exc:
                report["errors"].append(f"connect: {exc.strerror or exc}")
            self._step("connect")
        report["connect"] = summary(samples)
        report["connect_ms"] = round(stats.median(samples), 1) if samples else None

    def _ttft(self, report: dict, data: dict) -> None:
        self.phase = "ttft"
        sizes = data["prompt_sets"][self.plan.prompt_set]
        ttfts, by_size = [], {}
        for run in range(self.plan.runs):
            if self.cancelled:
                break
            size = sizes[run % len(sizes)]
            generation, finished = self._generate(
                _messages(data["ttft"]["question"], size), data["ttft"]["max_tokens"])
            if self.cancelled:  # cut short by cancel(): not measured, not a failure
                break
            self._step("ttft")
            ttft = generation.metrics.ttft_ms
            if ttft is not None and _succeeded(finished):
                ttfts.append(ttft)
                by_size.setdefault(str(size), []).append(ttft)
            else:
                report["errors"].append(f"ttft run {run + 1}: {_why(finished)}")
        report["ttft_ms"] = summary(ttfts)
        report["ttft_by_context_tokens"] = {size: round(stats.median(values), 1)
                                           for size, values in by_size.items()}

    def _long_answer(self, report: dict, data: dict) -> None:
        if self.cancelled:
            return
        self.phase = "long_answer"
        generation, finished = self._generate(_messages(data["long_answer"]["question"]),
                                              data["long_answer"]["max_tokens"])
        if self.cancelled:  # a partial stream cut short by cancel() is not graded
            return
        self._step("long_answer")
        metrics = generation.metrics
        gaps = metrics.gaps_s
        interruptions = sum(gap > INTERRUPTION_S for gap in gaps)
        intervals = len(gaps)
        if not _succeeded(finished) and generation.attempts and generation.attempts[-1].arrivals:
            # Text came, then the stream broke off (a stall past the idle timeout, a reset):
            # the worst interruption of all, though no gap after it was ever measured.
            interruptions += 1
            intervals += 1
        report.update({
            "itl_mean_ms": metrics.itl_mean_ms, "itl_p95_ms": metrics.itl_p95_ms,
            "itl_cv": metrics.itl_cv, "max_gap_ms": metrics.max_gap_ms,
            "interruptions": interruptions if intervals else None,
            "interruption_rate": round(interruptions / intervals, 6) if intervals else None,
            "tokens_per_s": metrics.tokens_per_s, "long_answer_chunks": len(generation.attempts[-1].arrivals)
            if generation.attempts else 0,
            "long_answer_ok": _succeeded(finished)})
        if not _succeeded(finished):
            report["errors"].append(f"long answer: {_why(finished)}")

    def _concurrency(self, report: dict, data: dict) -> None:
        report["concurrency"] = {}
        messages = _messages(data["concurrency"]["question"])
        max_tokens = data["concurrency"]["max_tokens"]
        for level in self.plan.levels:
            if self.cancelled:
                return
            self.phase = f"concurrency_{level}"
            results: list = [None] * level
            gate = threading.Barrier(level)

            def one(slot: int, gate=gate, results=results, level=level) -> None:
                try:
                    gate.wait(timeout=30)  # start together: K at once, never more
                except threading.BrokenBarrierError:
                    pass
                results[slot] = self._generate(messages, max_tokens)
                self._step(f"concurrency_{level}")

            threads = [threading.Thread(target=one, args=(slot,), daemon=True,
                                        name=f"writer-check-{level}-{slot}") for slot in range(level)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            ok = [gen for gen, fin in results if _succeeded(fin)]
            errors: dict[str, int] = {}
            for _, finished in results:
                if not _succeeded(finished):
                    key = str(finished.error_kind or (CheckStatus.CANCELLED if self.cancelled
                                                      else "no_finish"))
                    errors[key] = errors.get(key, 0) + 1
            ttfts = [gen.metrics.ttft_ms for gen in ok if gen.metrics.ttft_ms is not None]
            report["concurrency"][str(level)] = {
                "requested": level, "succeeded": len(ok),
                "success_rate": round(len(ok) / level, 4),
                "ttft_p95_ms": round(percentile(ttfts, 95), 1) if ttfts else None,
                "errors": errors, "complete": not self.cancelled}

    def _generate(self, messages: list[dict], max_tokens: int) -> tuple[Generation, Finished]:
        generation = Generation(Request(PromptPlan(messages, max_tokens), self.provider, retry=NO_RETRY),
                                health=StreamHealth())
        with self._lock:
            self._live.add(generation)
        if self.cancelled:
            generation.cancel()
        finished = None
        try:
            for event in generation.events():
                if isinstance(event, Finished):
                    finished = event
        finally:
            with self._lock:
                self._live.discard(generation)
        usage = generation.usage()
        with self._lock:
            self.usage[0] += usage.input_tokens
            self.usage[1] += usage.output_tokens
        return generation, finished

    def _price_info(self) -> dict | None:
        store = Store(self.settings.database)
        try:
            price = _price(self.provider, self.settings, store)
        finally:
            store.close()
        if self.provider.kind == "local":
            return {"input_per_1m": 0.0, "output_per_1m": 0.0, "currency": "local"}
        if price is None:
            return None
        return {"input_per_1m": price.input_per_1m, "output_per_1m": price.output_per_1m,
                "currency": price.currency}

    def _usage_info(self, price: dict | None) -> dict:
        cost = None
        if price is not None:
            cost = round((self.usage[0] * price["input_per_1m"]
                          + self.usage[1] * price["output_per_1m"]) / 1e6, 8)
        return {"input_tokens": self.usage[0], "output_tokens": self.usage[1], "cost": cost,
                "currency": price["currency"] if price else None}


def _succeeded(finished: Finished | None) -> bool:
    """Ended with a finish reason (stop, or length at the small max_tokens)."""
    return finished is not None and finished.finish_reason is not None and \
        finished.status in (Status.COMPLETED, Status.TRUNCATED)


def _why(finished: Finished | None) -> str:
    if finished is None:
        return "no answer"
    return finished.error or f"ended {finished.status} without a finish reason"


# -- one click: can we reach it at all? -------------------------------------------------

def connection_test(settings: Settings, provider: Provider, *, actor: Actor | None = None) -> dict:
    """Connection set-up and one tiny answer: ok, connect_ms, ttft_ms, error (English
    detail) and error_kind (kinds.ErrorKind, for a message in the UI language)."""
    result: dict = {"provider": provider.name, "ok": False, "connect_ms": None, "ttft_ms": None,
                    "error": None, "error_kind": None}
    if provider.kind != "local":
        try:
            result["connect_ms"] = round(connect_once(provider.base_url,
                                                      min(provider.timeout_s, 15.0)) * 1000, 1)
        except OSError as exc:
            result["error"] = logs.redact(f"cannot connect to {provider.base_url or OPENAI_URL}: "
                                          f"{exc.strerror or exc}")
            result["error_kind"] = ErrorKind.CONNECT
            return result
    check = Check(settings, provider, Plan(runs=1, levels=(), long_answer=False), actor=actor)
    generation, finished = check._generate(_messages("Reply with the single word OK."), 5)
    result["ok"] = _succeeded(finished)
    result["ttft_ms"] = generation.metrics.ttft_ms
    result["error"] = None if result["ok"] else _why(finished)
    if not result["ok"]:
        result["error_kind"] = (finished.error_kind if finished is not None else None) or \
            ErrorKind.OTHER
    return result


# -- the page's background check ---------------------------------------------------------

def start(settings: Settings, provider: Provider, plan: Plan, *, on_end=None,
          actor: Actor | None = None) -> Check:
    """Run a check on a thread of the server (one at a time per database: two checks
    at once would measure each other). Saved when it ends (completed or cancelled)."""
    check = Check(settings, provider, plan, actor=actor)
    if shared(settings.database).begin("check", None, check, check.finished) is not None:
        raise CheckError("a provider check is already running; wait for it or cancel it")

    def run() -> None:
        try:
            report = check.run()
            store = Store(settings.database)
            try:
                check.saved_id = save(store, report, author=check.actor.name)
            finally:
                store.close()
        except Exception as exc:
            check.error = logs.log_exception("provider check failed", exc)
        finally:
            check.finished.set()
            if on_end is not None:
                on_end(check)

    threading.Thread(target=run, name="writer-check", daemon=True).start()
    return check


def current(settings: Settings) -> Check | None:
    """This process's check of the database, while it runs (or just ended), from the
    registry of live runs."""
    return shared(settings.database).run("check")
