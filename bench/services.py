"""Throwaway Redis and PostgreSQL servers on loopback, for the scale-out tests and benches.

Each starts Debian's server binary as a child process on a free 127.0.0.1 port
with its data in a new temporary folder (PostgreSQL: a cluster made by initdb,
run as the `postgres` user when we are root, since PostgreSQL refuses root),
waits until it answers, and on `stop()` ends it and removes the folder.
`find_*()` says why a server cannot be had, so a test can skip with that message.
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

INSTALL = "install it with `HARK_EXTRA_APT='redis-server postgresql' bash scripts/setup.sh` as root"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited ({proc.returncode}):\n{log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{proc.args[0]} did not listen on {port} within {timeout} s")


class _Server:
    url: str
    STOP = signal.SIGTERM

    def __init__(self, proc: subprocess.Popen, folder: Path):
        self.proc, self.folder = proc, folder

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(self.STOP)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def find_nginx() -> tuple[str | None, str]:
    """(the nginx binary scripts/run.sh would start, "") or (None, why not)."""
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    return (binary, "") if binary else (None, "nginx is not installed (scripts/setup.sh installs it as root)")


# ---- Redis -------------------------------------------------------------------------

def find_redis() -> tuple[str | None, str]:
    """(the redis-server binary, "") or (None, why not)."""
    binary = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if os.access(p, os.X_OK)), None)
    return (binary, "") if binary else (None, f"redis-server is not installed ({INSTALL})")


class Redis(_Server):
    """`redis-server` on 127.0.0.1:<free port>, nothing saved to disk; `.url` for HARK_REDIS_URL."""

    def __init__(self, timeout: float = 20):
        binary, why = find_redis()
        if binary is None:
            raise RuntimeError(why)
        folder = Path(tempfile.mkdtemp(prefix="hark-redis-"))
        port = free_port()
        log = folder / "redis.log"
        with open(log, "w") as out:
            proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                                     "--appendonly", "no", "--dir", str(folder), "--daemonize", "no",
                                     "--protected-mode", "yes"], stdout=out, stderr=subprocess.STDOUT)
        super().__init__(proc, folder)
        try:
            _wait_port(port, proc, log, timeout)
        except BaseException:
            self.stop()
            raise
        self.port, self.url = port, f"redis://127.0.0.1:{port}/0"


# ---- PostgreSQL ----------------------------------------------------------------------

def _pg_bin() -> Path | None:
    """Debian keeps initdb and postgres under /usr/lib/postgresql/<version>/bin, off PATH."""
    found = shutil.which("initdb")
    if found and Path(found).with_name("postgres").exists():
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                      key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    return versions[-1].parent if versions else None


def _pg_user() -> str | None:
    """Who runs the cluster: ourselves, or the `postgres` (else `nobody`) account when root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and there is no postgres or nobody account to run PostgreSQL")


def find_postgres() -> tuple[Path | None, str]:
    """(the folder of initdb and postgres, "") or (None, why not)."""
    found = _pg_bin()
    if found is None or not (found / "initdb").exists():
        return None, f"PostgreSQL's server (initdb, postgres) is not installed ({INSTALL})"
    return found, ""


class Postgres(_Server):
    """A new cluster (initdb, trust auth on loopback only) serving database `hark` on a free port.

    `.url` is the SQLAlchemy URL for HARK_DATABASE_URL (psycopg 3 driver). Durability
    is switched off (fsync, synchronous commit): a test cluster lives for minutes.
    """
    STOP = signal.SIGINT      # "fast" shutdown: ends open sessions (SIGTERM would wait for them)

    def __init__(self, timeout: float = 60):
        bin_dir, why = find_postgres()
        if bin_dir is None:
            raise RuntimeError(why)
        folder = Path(tempfile.mkdtemp(prefix="hark-pg-"))
        user = _pg_user()
        if user:
            account = pwd.getpwnam(user)
            os.chown(folder, account.pw_uid, account.pw_gid)
        run_as = {"user": user} if user else {}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8", "TZ": "UTC"}
        data = folder / "data"
        init = subprocess.run([str(bin_dir / "initdb"), "-D", str(data), "-U", "hark", "--auth=trust",
                               "--encoding=UTF8", "--no-sync"], cwd=folder, env=env, capture_output=True,
                              text=True, **run_as)
        if init.returncode:
            shutil.rmtree(folder, ignore_errors=True)
            raise RuntimeError(f"initdb failed:\n{init.stdout[-1500:]}{init.stderr[-1500:]}")
        port = free_port()
        log = folder / "postgres.log"
        with open(log, "w") as out:
            if user:
                os.chown(log, account.pw_uid, account.pw_gid)
            proc = subprocess.Popen(
                [str(bin_dir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
                 "-k", str(folder), "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off", "-c", "max_connections=100"],
                cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT, **run_as)
        super().__init__(proc, folder)
        try:
            _wait_port(port, proc, log, timeout)
            self._create_database(port, timeout)
        except BaseException:
            self.stop()
            raise
        self.port, self.url = port, f"postgresql+psycopg://hark@127.0.0.1:{port}/hark"

    def new_database(self, name: str) -> str:
        """Another empty database on this server (a fresh installation); its SQLAlchemy URL."""
        import psycopg

        if not name.isidentifier():
            raise ValueError(f"not a plain database name: {name!r}")
        with psycopg.connect(host="127.0.0.1", port=self.port, user="hark", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://hark@127.0.0.1:{self.port}/{name}"

    @staticmethod
    def _create_database(port: int, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:          # the port opens a moment before the server accepts logins
            try:
                with psycopg.connect(host="127.0.0.1", port=port, user="hark", dbname="postgres",
                                     autocommit=True, connect_timeout=5) as conn:
                    conn.execute("CREATE DATABASE hark")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
