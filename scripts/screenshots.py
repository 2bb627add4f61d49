"""Screenshots of every page, in Chinese and English, in a real browser.

For each UI language (zh, then en) and each viewport width (1280×800; also 1920×1080
with --wide) this starts a fresh `streamlit run app.py` on a free loopback port with
its own scratch database, against the loopback fake provider (tests/fake_openai.py)
answering as tests/scripted_writer.py's ScriptedWriter("ramble"), so length control
has something to cut. In Debian's chromium it then:

  1. fills the Write form (topic, target 300; English article language for en),
     clicks Generate, waits for the success alert → `<lang>-<width>-write[-full].png`;
  2. writes a long article (target 1600: outline, then sections)
     → `<lang>-<width>-write-long[-full].png`;
  3. Batch: uploads a CSV of 8 rows (two invalid) → `<lang>-<width>-batch-preview[-full].png`,
     starts it and waits until it is done → `<lang>-<width>-batch[-full].png`;
  4. opens History (the newest article is preselected) → `<lang>-<width>-history[-full].png`;
  5. Usage & cost → `<lang>-<width>-usage[-full].png`;
  6. Providers: runs a provider check (5 runs, 10 streams) → `<lang>-<width>-providers[-full].png`;
  7. Brand kits (one kit saved) → `<lang>-<width>-brands[-full].png`;
  8. Settings → `<lang>-<width>-settings[-full].png`.

`-full` is the whole page (Streamlit scrolls inside its own container, so the
viewport is grown to the content's height for that shot); the other one is what
the viewport shows, scrolled to the top. Files go to test-artifacts/screens/
(git-ignored); the list of files written is printed at the end.

    .venv/bin/python scripts/screenshots.py [--wide] [--languages zh,en] [--out DIR]
        [--database-url postgresql://writer@127.0.0.1:5432/postgres]   # pages on PostgreSQL

Every wait is for a condition, with a timeout that says what was awaited; on a
failure the page at that moment is saved as `<lang>-<width>-FAILED.png` and the end
of the server's output is printed. The servers are always stopped.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fake_openai import FakeOpenAI  # noqa: E402
from scripted_writer import ScriptedWriter  # noqa: E402
from serving import CHROMIUM, CHROMIUM_ARGS, NotServing, wait_until_serving  # noqa: E402

VIEWPORTS = {1280: 800, 1920: 1080}
STARTUP_TIMEOUT_S = 60
UI_TIMEOUT_MS = 30_000          # a page to render, a widget to appear
SHORT_ARTICLE_TIMEOUT_MS = 60_000
LONG_ARTICLE_TIMEOUT_MS = 180_000
SETTLE_MS = 400                 # after a viewport resize only
MAX_FULL_HEIGHT = 12_000

BRIEFS = {
    "zh": {"topic": "春季新品咖啡机上市：让上班族早上多睡十分钟",
           "long_topic": "2025 年咖啡机品牌小红书种草全攻略",
           "audience": "一线城市上班族", "keywords": "意式浓缩, 一键清洗, 早餐"},
    "en": {"topic": "Launching our spring espresso machine to busy commuters",
           "long_topic": "The complete guide to social media launches for small coffee brands",
           "audience": "busy office workers", "keywords": "espresso, one-touch cleaning"},
}
SHORT_TARGET, LONG_TARGET = 300, 1600


class ScreenshotError(Exception):
    """A step did not reach its condition in time: says which step and what."""


def load_labels(language: str) -> dict:
    with open(ROOT / "locales" / f"{language}.toml", "rb") as f:
        return tomllib.load(f)


# ---- servers ----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AppServer:
    """`streamlit run app.py` in its own session (so it and its children stop together)."""

    def __init__(self, workdir: Path, fake_url: str, language: str, database_url: str = ""):
        self.workdir = workdir
        self.db_path = workdir / "writer.db"
        self.database = database_url or self.db_path  # what Store() takes
        self.log_path = workdir / "streamlit.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WRITER_", "OPENAI_"))}
        env.update(OPENAI_BASE_URL=fake_url, OPENAI_API_KEY="sk-test", WRITER_MODEL="gpt-4o-mini",
                   WRITER_DB=str(self.db_path), WRITER_NO_DOTENV="1",
                   WRITER_UI_LANGUAGE=language)
        if database_url:  # every page on PostgreSQL (--database-url)
            env["WRITER_DATABASE_URL"] = database_url
        cmd = [sys.executable, "-m", "streamlit", "run", "app.py",
               "--server.port", str(self.port), "--server.address", "127.0.0.1",
               "--server.headless", "true", "--browser.gatherUsageStats", "false"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_bytes().decode("utf-8", "replace")
        except OSError:
            return "(no server output)"
        return "\n".join(text.splitlines()[-lines:])

    def wait_healthy(self) -> None:
        try:
            wait_until_serving(self.proc, f"{self.url}/_stcore/health",
                               timeout_s=STARTUP_TIMEOUT_S, log=self.log_tail, name="streamlit",
                               ok=lambda body: body.strip() == b"ok")
        except NotServing as exc:
            raise ScreenshotError(str(exc)) from None

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def newest_article(self) -> tuple[int, str]:
        """(id, topic) of the newest article; (0, "") before the first one."""
        if self.database != self.db_path:
            from writer.storage.store import Store

            store = Store(self.database)
            try:
                rows = store.rows("SELECT id, topic FROM articles ORDER BY id DESC LIMIT 1")
            finally:
                store.close()
            return (rows[0]["id"], rows[0]["topic"]) if rows else (0, "")
        if not self.db_path.exists():
            return 0, ""
        with contextlib.closing(sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT id, topic FROM articles ORDER BY id DESC LIMIT 1").fetchone()
        return row or (0, "")


@contextlib.contextmanager
def app_server(workdir: Path, fake_url: str, language: str, database_url: str = ""):
    server = AppServer(workdir, fake_url, language, database_url)
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def scratch_database(server_url: str, name: str):
    """A fresh database on the PostgreSQL server at `server_url` (its URL), dropped after;
    "" (SQLite) when no server is given."""
    if not server_url:
        yield ""
        return
    from urllib.parse import urlsplit, urlunsplit

    from writer.storage import pg

    database = f"screens_{name}_{os.getpid()}"
    admin = pg.PgConnection(server_url)
    try:
        admin.execute_raw(f"CREATE DATABASE {database}")
        yield urlunsplit(urlsplit(server_url)._replace(path=f"/{database}"))
    finally:
        pg.close_pool()
        admin.execute_raw(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.close()


# ---- page helpers -----------------------------------------------------------------------

class Shooter:
    """One browser context (one Streamlit session) at one viewport, writing PNGs."""

    def __init__(self, page, server: AppServer, labels: dict, prefix: str, out: Path,
                 width: int, height: int):
        self.page, self.server, self.labels = page, server, labels
        self.prefix, self.out, self.width, self.height = prefix, out, width, height
        self.main = page.get_by_test_id("stMain")
        self.written: list[Path] = []

    def label(self, dotted: str) -> str:
        section, key = dotted.split(".")
        return self.labels[section][key]

    @contextlib.contextmanager
    def step(self, what: str):
        """Turn a Playwright timeout (or any failure) into one clear message."""
        from playwright.sync_api import Error as PlaywrightError

        try:
            yield
        except (PlaywrightError, AssertionError) as exc:
            failed = self.out / f"{self.prefix}-FAILED.png"
            with contextlib.suppress(Exception):
                self.page.screenshot(path=str(failed), full_page=True)
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise ScreenshotError(
                f"[{self.prefix}] timed out or failed while {what}: {first_line}\n"
                f"page at that moment: {failed}\n"
                f"--- end of the streamlit output ---\n{self.server.log_tail()}") from exc

    def wait_idle(self, timeout: int = UI_TIMEOUT_MS) -> None:
        """The script run is over (no rerun in flight), fonts are loaded."""
        self.page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]') \
            .wait_for(timeout=timeout)
        self.page.wait_for_function("() => document.fonts.status === 'loaded'", timeout=timeout)

    def wait_rendered(self, timeout: int = UI_TIMEOUT_MS) -> None:
        """Every shown dataframe has painted its canvas and every chart its canvas/svg
        (those in a closed expander are not rendered until it opens), and no finite
        animation is still running."""
        self.wait_idle(timeout)
        self.page.wait_for_function("""() => {
            const main = document.querySelector('[data-testid="stMain"]');
            if (!main) return false;
            const shown = e => !e.closest('details:not([open])') && e.getClientRects().length > 0;
            const frames = [...main.querySelectorAll('[data-testid="stDataFrame"]')].filter(shown);
            const charts = [...main.querySelectorAll('[data-testid="stVegaLiteChart"]')].filter(shown);
            return frames.every(f => f.querySelector('canvas'))
                && charts.every(c => c.querySelector('canvas, svg'));
        }""", timeout=timeout)
        # CSS transitions (the progress bar grows to its last value) have ended.
        self.page.wait_for_function("""() => document.getAnimations().every(a =>
            a.playState !== 'running' || a.effect?.getComputedTiming().iterations === Infinity)""",
                                    timeout=timeout)

    def scroll_top(self) -> None:
        self.page.evaluate("""() => {
            for (const s of ['[data-testid="stMain"]', '[data-testid="stAppScrollToBottomContainer"]'])
                document.querySelectorAll(s).forEach(e => e.scrollTop = 0);
            window.scrollTo(0, 0);
        }""")

    def shoot(self, name: str) -> None:
        """`<prefix>-<name>.png` (the viewport, scrolled to the top) and
        `<prefix>-<name>-full.png` (the viewport grown to the whole content)."""
        self.out.mkdir(parents=True, exist_ok=True)
        self.scroll_top()
        path = self.out / f"{self.prefix}-{name}.png"
        self.page.screenshot(path=str(path))
        self.written.append(path)

        content = self.page.evaluate("""() => Math.max(
            ...['[data-testid="stMain"]', '[data-testid="stMainBlockContainer"]',
                '[data-testid="stSidebarContent"]']
            .map(s => document.querySelector(s)).filter(Boolean).map(e => e.scrollHeight))""")
        full_height = min(max(self.height, content + 80), MAX_FULL_HEIGHT)
        self.page.set_viewport_size({"width": self.width, "height": full_height})
        self.page.wait_for_timeout(SETTLE_MS)  # the layout settles after the resize
        self.wait_rendered()
        path = self.out / f"{self.prefix}-{name}-full.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.written.append(path)
        self.page.set_viewport_size({"width": self.width, "height": self.height})
        self.page.wait_for_timeout(SETTLE_MS)

    def nav(self, key: str) -> None:
        title = self.label(f"app.nav_{key}")
        with self.step(f"opening the {title!r} page from the sidebar"):
            self.page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
            self.main.get_by_role("heading", name=self.label(f"{key}.title")).first.wait_for()
            self.wait_idle()


# ---- the flow ---------------------------------------------------------------------------

KITS = {
    "zh": dict(name="MiniBrew 咖啡", voice="温暖、干脆，像懂咖啡的朋友", audience="一线城市上班族",
               do=["先讲好处再讲参数", "每段不超过三句"], dont=["夸大功效"],
               banned_words=["最好", "第一", "顶级"], required_terms=["MiniBrew Pro"],
               facts="萃取 30 秒；研磨噪音 45 分贝；一键清洗", samples=["清晨的第一杯，交给 MiniBrew。"]),
    "en": dict(name="MiniBrew", voice="warm, crisp, like a friend who knows coffee",
               audience="busy office workers", do=["benefits before specs"],
               dont=["overclaim"], banned_words=["best", "number one"],
               required_terms=["MiniBrew Pro"], facts="30 s extraction; 45 dB grinding",
               samples=["Your first cup of the day, handled by MiniBrew."]),
}


def save_kit(db_path: Path | str, language: str) -> None:
    """A brand kit in the server's database (as the Brands page or `brand import` would)."""
    from writer.access import ADMIN, Actor
    from writer.brands import BrandKit
    from writer.storage.brands import save
    from writer.storage.store import Store

    store = Store(db_path)
    try:
        save(store, BrandKit(**KITS[language]), actor=Actor("screenshots", ADMIN))
    finally:
        store.close()

def write_article(s: Shooter, language: str, topic: str, target: int, timeout: int,
                  brief: dict) -> None:
    page, main = s.page, s.main
    with s.step("filling the Write form"):
        page.get_by_role("textbox", name=s.label("write.topic"), exact=True).fill(topic)
        length = s.label("write.length").split("{")[0]  # "目标长度（{unit}）"
        page.get_by_role("spinbutton", name=re.compile("^" + re.escape(length))).fill(str(target))
        page.get_by_role("textbox", name=s.label("write.audience"), exact=True).fill(brief["audience"])
        page.get_by_role("textbox", name=s.label("write.keywords"), exact=True).fill(brief["keywords"])
        wanted = s.label(f"languages.{language}")
        radio = page.get_by_test_id("stRadio").filter(has_text=s.label("write.language"))
        radio.get_by_text(wanted, exact=True).click()
        radio.get_by_role("radio", name=wanted).wait_for(state="attached")
        if not radio.get_by_role("radio", name=wanted).is_checked():
            raise AssertionError(f"the article language {wanted!r} could not be chosen")
    generate = s.label("write.generate")
    with s.step(f"generating an article of {target} (button {generate!r}, success alert)"):
        expected = s.server.newest_article()[0] + 1  # a fresh database per server
        page.get_by_role("button", name=generate, exact=True).click()
        page.wait_for_function(
            r"""(id) => {
                const main = document.querySelector('[data-testid="stMain"]');
                const ok = [...main.querySelectorAll('[data-testid="stAlertContentSuccess"]')]
                    .some(e => (e.innerText.match(/#\d+/g) || []).includes('#' + id));
                return ok || main.querySelector('[data-testid="stAlertContentError"]') !== null;
            }""", arg=expected, timeout=timeout)
        problem = main.get_by_test_id("stAlertContentError")
        if problem.count():
            raise AssertionError(f"the page shows an error instead of success: "
                                 f"{problem.first.inner_text()!r}")
        s.wait_idle(timeout)
        main.get_by_role("button", name=s.label("history.download_md"), exact=True).wait_for()
        s.wait_rendered()


BATCH_ROWS = {
    "zh": ["主题,类型,字数,语言,SKU",
           *[f"{name}：新品上市,产品描述,{length},中文,SKU-{i:03d}" for i, (name, length) in enumerate(
               [("便携咖啡机", 150), ("降噪耳机", 120), ("智能手环", 100), ("空气炸锅", 150),
                ("保温杯", 100), ("机械键盘", 120)], 1)],
           ",产品描述,150,中文,SKU-007", "投影仪：新品上市,产品描述,99999999,中文,SKU-008"],
    "en": ["topic,content_type,length,language,SKU",
           *[f"{name}: new in store,product_description,{length},en,SKU-{i:03d}"
             for i, (name, length) in enumerate(
               [("Portable espresso maker", 150), ("Noise-cancelling headphones", 120),
                ("Fitness band", 100), ("Air fryer", 150), ("Travel mug", 100),
                ("Mechanical keyboard", 120)], 1)],
           ",product_description,150,en,SKU-007",
           "Mini projector: new in store,product_description,99999999,en,SKU-008"],
}


def run_batch(s: Shooter, language: str, server: AppServer) -> None:
    """The Batch page: upload a CSV (two invalid rows), preview, start, finished."""
    s.nav("batch")
    csv_path = server.workdir / f"products-{language}.csv"
    csv_path.write_text("\n".join(BATCH_ROWS[language]) + "\n", encoding="utf-8-sig")
    with s.step("uploading a CSV on the Batch page and waiting for the preview"):
        s.main.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(csv_path))
        s.main.get_by_test_id("stDataFrame").first.wait_for()
        s.main.get_by_role("button", name=s.label("batch.start").format(rows=6)).wait_for()
        s.wait_rendered()
        s.shoot("batch-preview")
    with s.step("starting the batch and waiting until it is done"):
        s.main.get_by_role("button", name=s.label("batch.start").format(rows=6)).click()
        done = s.label("batch.done").split("{")[0]
        s.main.get_by_text(done).first.wait_for(timeout=SHORT_ARTICLE_TIMEOUT_MS * 2)
        s.wait_rendered()
        s.shoot("batch")


def run_flow(browser, server: AppServer, language: str, width: int, out: Path) -> list[Path]:
    height = VIEWPORTS[width]
    labels = load_labels(language)
    brief = BRIEFS[language]
    context = browser.new_context(viewport={"width": width, "height": height},
                                  locale="zh-CN" if language == "zh" else "en-US",
                                  device_scale_factor=1)
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    s = Shooter(page, server, labels, f"{language}-{width}", out, width, height)
    try:
        with s.step("loading the Write page"):
            page.goto(server.url + "/")
            page.get_by_role("textbox", name=s.label("write.topic"), exact=True).wait_for()
            s.wait_idle()

        write_article(s, language, brief["topic"], SHORT_TARGET, SHORT_ARTICLE_TIMEOUT_MS, brief)
        with s.step("taking the Write page screenshots"):
            s.shoot("write")

        # A long article: planned first (Outline panel), then written section by section.
        write_article(s, language, brief["long_topic"], LONG_TARGET, LONG_ARTICLE_TIMEOUT_MS, brief)
        with s.step("checking the long article's Outline panel"):
            s.main.get_by_text(s.label("write.outline"), exact=True).first.wait_for()
            s.shoot("write-long")

        run_batch(s, language, server)

        s.nav("history")
        newest_id, newest_topic = server.newest_article()
        with s.step(f"waiting for History to open the newest article #{newest_id}"):
            box = s.main.get_by_role("combobox", name=s.label("history.open"))
            box.wait_for()
            value = box.input_value()
            if value != f"#{newest_id} · {newest_topic}":
                raise AssertionError(f"History opened {value!r}, not #{newest_id}")
            s.main.get_by_test_id("stDataFrame").first.wait_for()
            s.main.get_by_role("tab", name=s.label("history.raw_tab")).wait_for()
            s.wait_rendered()
            s.shoot("history")

        s.nav("usage")
        with s.step("waiting for the Usage charts and tables"):
            s.main.get_by_test_id("stMetric").first.wait_for()
            s.main.get_by_test_id("stVegaLiteChart").first.wait_for()
            s.main.get_by_test_id("stDataFrame").first.wait_for()
            s.wait_rendered()
            s.shoot("usage")

        s.nav("providers")
        with s.step("running a provider check on the Providers page and waiting for its report"):
            s.main.get_by_text(s.label("providers.confirm").split("{")[0]).first.click()
            s.main.get_by_role("button", name=s.label("providers.run")).click()
            s.main.get_by_test_id("stVegaLiteChart").first.wait_for(timeout=120_000)
            s.main.get_by_test_id("stDataFrame").first.wait_for()
            s.wait_rendered()
            s.shoot("providers")

        with s.step("saving a brand kit in the server's database"):
            save_kit(server.database, language)
        s.nav("brands")
        with s.step("waiting for the Brand kits page and its list"):
            s.main.get_by_test_id("stDataFrame").first.wait_for()
            s.wait_rendered()
            s.shoot("brands")

        s.nav("settings")
        with s.step("waiting for the Settings price table and forms"):
            s.main.get_by_test_id("stDataFrame").first.wait_for()
            s.main.get_by_role("button", name=s.label("settings.save_budgets")).wait_for()
            s.wait_rendered()
            s.shoot("settings")
        if errors:
            print(f"warning: JavaScript errors on the page ({s.prefix}): {errors}", file=sys.stderr)
        return s.written
    finally:
        context.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wide", action="store_true", help="also 1920×1080")
    parser.add_argument("--languages", default="zh,en", help="comma-separated: zh,en")
    parser.add_argument("--out", type=Path, default=ROOT / "test-artifacts" / "screens")
    parser.add_argument("--database-url", default="",
                        help="a PostgreSQL server (postgresql://user@host:port/db): each language "
                             "runs on a fresh database created there (and dropped after)")
    args = parser.parse_args()
    languages = [lang.strip() for lang in args.languages.split(",") if lang.strip()]
    unknown = [lang for lang in languages if lang not in BRIEFS]
    if unknown:
        parser.error(f"unknown language(s) {unknown}: use zh and/or en")
    widths = [1280, 1920] if args.wide else [1280]
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        print(f"error: {CHROMIUM} not found (apt-get install chromium fonts-noto-cjk)",
              file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    written: list[Path] = []
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="writer-screens-") as tmp, \
                FakeOpenAI(responder=ScriptedWriter("ramble", chunk_delay=0.002)) as fake, \
                sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                for language in languages:
                    for width in widths:
                        workdir = Path(tmp) / f"{language}-{width}"
                        workdir.mkdir()
                        print(f"[{language}-{width}] starting streamlit (WRITER_UI_LANGUAGE="
                              f"{language}) against {fake.base_url}", file=sys.stderr)
                        with scratch_database(args.database_url, f"{language}_{width}") as url, \
                                app_server(workdir, fake.base_url, language, url) as server:
                            files = run_flow(browser, server, language, width, args.out)
                        written += files
                        print(f"[{language}-{width}] {len(files)} screenshots "
                              f"({time.monotonic() - started:.0f} s so far)", file=sys.stderr)
            finally:
                browser.close()
    except ScreenshotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if written:
            print("written before the failure:\n" + "\n".join(str(p) for p in written),
                  file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        return 130

    print(f"{len(written)} screenshots in {args.out} ({time.monotonic() - started:.0f} s):")
    for path in written:
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
