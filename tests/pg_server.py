"""A real, throwaway PostgreSQL server for tests and benchmarks (issue 24's backend).

`PgServer` runs Debian's `initdb` and `pg_ctl` in a fresh temporary directory, listens
on 127.0.0.1 on a free port (TCP only for clients; its Unix socket stays inside that
directory), hands out fresh databases (`new_database`) and, at `stop()`, kills the
server and removes the directory. The test fixtures `pg_server`/`pg_url` live in
tests/conftest.py. By hand:

    python tests/pg_server.py      # prints the URL on stdout, keeps the server until Ctrl-C
"""
from __future__ import annotations

import atexit
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

USER = "writer"  # the superuser initdb creates; `-A trust`, so no password anywhere
START_TIMEOUT_S = 60.0  # generous: a loaded 2-core machine; a healthy start takes ~1 s
# Durability is worthless for a server deleted at the end of the run, and turning it off
# is what makes initdb, CREATE DATABASE and every commit fast.
SERVER_SETTINGS = ("-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c max_connections=200")


class PgServerError(RuntimeError):
    """The server could not be found, started or used; the message is one line."""


def find_binaries() -> tuple[Path, Path]:
    """(initdb, pg_ctl): the highest version under /usr/lib/postgresql, else on PATH."""
    def version(bin_dir: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", bin_dir.parent.name)) or (0,)

    dirs = sorted((p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")),
                  key=version, reverse=True)
    for bin_dir in dirs:
        if (bin_dir / "pg_ctl").is_file():
            return bin_dir / "initdb", bin_dir / "pg_ctl"
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(initdb), Path(pg_ctl)
    raise PgServerError("no PostgreSQL server found (initdb under /usr/lib/postgresql/*/bin or on "
                        "PATH): install Debian's postgresql (scripts/test.sh does)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_of(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def _one_line(text: str, lines: int = 6) -> str:
    tail = [line.strip() for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(tail) or "(empty)"


class PgServer:
    """A PostgreSQL server in a temporary directory, removed again by `stop()`.

    `with PgServer() as server:` starts and removes it (or `start()`/`stop()`). As root the files belong to `postgres` and the server runs as that
    user (initdb refuses root); otherwise it runs as the current user."""

    def __init__(self) -> None:
        self.initdb, self.pg_ctl = find_binaries()
        self.as_postgres = os.geteuid() == 0
        self.root: Path | None = None
        self.port = 0
        self._watchdog: subprocess.Popen | None = None

    # -- paths and URLs ------------------------------------------------------------

    @property
    def data(self) -> Path:
        return self._root() / "data"

    @property
    def log(self) -> Path:
        return self._root() / "server.log"

    @property
    def socket_dir(self) -> Path:
        return self._root() / "sock"

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def _root(self) -> Path:
        if self.root is None:
            raise PgServerError("the PostgreSQL server is not started")
        return self.root

    # -- life cycle ----------------------------------------------------------------

    def __enter__(self) -> PgServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout_s: float = START_TIMEOUT_S) -> PgServer:
        if self.root is not None:
            raise PgServerError("this PgServer is already started")
        self.root = Path(tempfile.mkdtemp(prefix="writer-pg-"))
        # Registered first: whatever happens below, the directory goes at exit, and if
        # this process dies without running atexit (SIGTERM, SIGKILL), the watchdog does it.
        atexit.register(self.stop)
        self._watchdog = subprocess.Popen(
            [sys.executable, __file__, "--watchdog", str(self.root)], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, start_new_session=True)  # Ctrl-C must not reach it
        try:
            self.socket_dir.mkdir()
            if self.as_postgres:
                # mkdtemp makes it 0700; postgres must own what it writes in, and the
                # server refuses a data directory others can read.
                shutil.chown(self.root, "postgres", "postgres")
                shutil.chown(self.socket_dir, "postgres", "postgres")
            self._initdb()
            deadline = time.monotonic() + timeout_s
            # The free port may be taken between probing and binding: retry with another.
            for _attempt in range(3):
                self.port = free_port()
                if self._pg_ctl_start(deadline):
                    break
            else:
                raise PgServerError(f"PostgreSQL could not bind a free port on 127.0.0.1; "
                                    f"log: {_one_line(self._log_text())}")
            self._wait_accepting(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Kill the server (immediate mode: nothing to save) and remove the directory."""
        root, self.root = self.root, None
        if root is None:
            return
        atexit.unregister(self.stop)
        data = root / "data"
        # The pid file, not a flag: a start interrupted after the postmaster began counts too.
        if (data / "postmaster.pid").exists():
            try:
                stopped = self._run([self.pg_ctl, "-D", data, "-m", "immediate", "-w", "-t", "30",
                                     "stop"], cwd=root, check=False, timeout=60).returncode == 0
            except subprocess.TimeoutExpired:
                stopped = False
            if not stopped:
                self._kill_leftover(data)
        shutil.rmtree(root, ignore_errors=True)
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.stdin.close()  # its cue: it finds the directory gone and exits
            try:
                watchdog.wait(timeout=30)
            except subprocess.TimeoutExpired:
                watchdog.kill()
                watchdog.wait()

    # -- databases -----------------------------------------------------------------

    def new_database(self, name: str | None = None) -> str:
        """CREATE a fresh database (a unique name unless given); its URL."""
        import psycopg
        from psycopg import sql

        name = name or f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_for(name)

    def drop_database(self, url: str) -> None:
        """Drop the database of `url`, ending the connections still open to it."""
        import psycopg
        from psycopg import sql

        name = database_of(url)
        if name in {"postgres", "template0", "template1", ""}:
            raise PgServerError(f"refusing to drop the server's own database {name!r}")
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            # FORCE: a client reconnecting between the two statements is ended too.
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                         .format(sql.Identifier(name)))

    # -- internals -----------------------------------------------------------------

    def _run(self, args: list, *, cwd: Path, check: bool = True,
             timeout: float = 120) -> subprocess.CompletedProcess:
        command = [str(arg) for arg in args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        # cwd inside our directory: postgres may not be able to enter the caller's (/root).
        result = subprocess.run(command, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                                text=True, timeout=timeout, env=self._env())
        if check and result.returncode != 0:
            raise PgServerError(f"{Path(str(args[0])).name} failed (exit {result.returncode}): "
                                f"{_one_line(result.stderr + result.stdout)}")
        return result

    @staticmethod
    def _env() -> dict[str, str]:
        # A caller's PG* variables (PGDATA, PGPORT, PGHOST, ...) must not steer our server.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.setdefault("LC_ALL", "C.UTF-8")
        return env

    def _initdb(self) -> None:
        base = [self.initdb, "-D", self.data, "-A", "trust", "-U", USER, "--encoding=UTF8",
                "--no-sync", "--no-instructions"]
        result = self._run([*base, "--locale=C.UTF-8"], cwd=self._root(), check=False)
        if result.returncode != 0 and "locale" in (result.stderr + result.stdout).lower():
            shutil.rmtree(self.data, ignore_errors=True)
            result = self._run([*base, "--locale=C"], cwd=self._root(), check=False)
        if result.returncode != 0:
            raise PgServerError(f"initdb failed (exit {result.returncode}): "
                                f"{_one_line(result.stderr + result.stdout)}")

    def _pg_ctl_start(self, deadline: float) -> bool:
        """Start on self.port; False when the port was taken meanwhile."""
        options = (f"-p {self.port} -k {shlex.quote(str(self.socket_dir))} -c listen_addresses=127.0.0.1 "
                   f"{SERVER_SETTINGS}")
        wait_s = max(1, int(deadline - time.monotonic()))
        result = self._run([self.pg_ctl, "-w", "-t", wait_s, "-D", self.data, "-l", self.log,
                            "-o", options, "start"], cwd=self._root(), check=False,
                           timeout=wait_s + 30)
        if result.returncode == 0:
            return True
        log = self._log_text()
        self._run([self.pg_ctl, "-D", self.data, "-m", "immediate", "-w", "stop"],
                  cwd=self._root(), check=False, timeout=60)
        if "could not bind" in log or "Address already in use" in log:
            self.log.unlink(missing_ok=True)
            return False
        raise PgServerError(f"PostgreSQL did not start (pg_ctl exit {result.returncode}): "
                            f"{_one_line(log or result.stderr + result.stdout)}")

    def _wait_accepting(self, deadline: float) -> None:
        """pg_ctl -w watched the Unix socket; clients use TCP: poll until it logs in."""
        import psycopg

        while True:
            try:
                with psycopg.connect(self.url, connect_timeout=5) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as error:
                if time.monotonic() > deadline:
                    raise PgServerError(f"PostgreSQL on 127.0.0.1:{self.port} did not accept a "
                                        f"connection in time ({str(error).strip()}); log: "
                                        f"{_one_line(self._log_text())}") from None
            time.sleep(0.05)

    def _log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    @staticmethod
    def _kill_leftover(data: Path) -> None:
        """If pg_ctl could not stop it, SIGKILL the postmaster this server wrote down
        (ours by its pid file; nobody else's server is touched)."""
        try:
            pid = int((data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        try:
            # Only if that pid is still a postgres on this directory, not a reused pid.
            if str(data) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _watch(root: Path) -> None:
    """The watchdog: block until the process that started the server closes our stdin
    (at stop(), or by dying in any way), then remove whatever is left of it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stdin.buffer.read()
    if root.is_dir() and root.name.startswith("writer-pg-"):
        server = PgServer()
        server.root = root
        server.stop()


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--watchdog":
        _watch(Path(sys.argv[2]))
        return 0
    if len(sys.argv) > 1:
        print("usage: python tests/pg_server.py  (starts a throwaway PostgreSQL, prints its URL, "
              "removes it at Ctrl-C)", file=sys.stderr)
        return 0 if sys.argv[1] in {"-h", "--help"} else 2
    # SIGTERM as Ctrl-C, so `kill PID` also removes the server and its directory.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        server = PgServer()
        began = time.monotonic()
        with server:
            print(server.url, flush=True)
            print(f"PostgreSQL up in {time.monotonic() - began:.1f} s, files in {server.root}; "
                  "Ctrl-C stops it and removes them", file=sys.stderr)
            try:
                while True:
                    signal.pause()
            except KeyboardInterrupt:
                pass
    except KeyboardInterrupt:
        return 130
    except PgServerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("PostgreSQL stopped and removed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
