"""A throw-away PostgreSQL server for tests: initdb into a temporary folder, start on a free port of
127.0.0.1, create a database, stop and delete everything afterwards.

PostgreSQL refuses to run as root (initdb and postgres both check). When the tests run as root (CI
containers, ``.ci/run``), the server binaries run as the ``postgres`` system user (created by the
PostgreSQL packages) through ``runuser``/``su``, in a folder handed to that user; clients (psycopg2
in the tests and the workers) connect over TCP as the database superuser ``gengen`` with trust
authentication, which is fine for a server that listens on 127.0.0.1 only and lives for one session.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def find_bindir() -> Path | None:
    """Folder holding initdb and pg_ctl: $PG_BINDIR, the PATH, or Debian's /usr/lib/postgresql/N/bin."""
    candidates = [os.environ.get("PG_BINDIR")]
    which = shutil.which("initdb")
    candidates.append(str(Path(which).parent) if which else None)
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    for c in candidates:
        if c and (Path(c) / "initdb").is_file() and (Path(c) / "pg_ctl").is_file():
            return Path(c)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """``start()`` -> URL of a fresh database; ``stop()`` removes the cluster."""

    def __init__(self, bindir: Path, dbname: str = "gengen_test"):
        self.bindir, self.dbname = bindir, dbname
        self.root = Path(tempfile.mkdtemp(prefix="gengen-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_user: str | None = None
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            import pwd

            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and there is no 'postgres' user to run the server as") from None
            self.as_user = "postgres"
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            os.chmod(self.root, 0o700)

    def _run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = [str(a) for a in args]
        if self.as_user is not None:
            runuser = shutil.which("runuser")
            cmd = ([runuser, "-u", self.as_user, "--"] + cmd) if runuser else ["su", self.as_user, "-s", "/bin/sh",
                                                                               "-c", " ".join(cmd)]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=timeout, cwd="/")

    def start(self) -> str:
        self._run(self.bindir / "initdb", "-D", self.data, "-U", "gengen", "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")
        self._start_server()
        import psycopg2

        deadline = time.monotonic() + 30
        while True:
            try:
                conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="gengen", dbname="postgres")
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {self.dbname}")
        conn.close()
        return self.url()

    def _start_server(self) -> None:
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off -c max_connections=50"
        res = self._run(self.bindir / "pg_ctl", "-D", self.data, "-o", opts, "-l", self.root / "server.log",
                        "-w", "-t", "60", "start", check=False)
        if res.returncode != 0:
            log = (self.root / "server.log").read_text() if (self.root / "server.log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {res.stderr.strip()} {log[-500:]}")

    def halt(self) -> None:
        """Stop the server the way a crash or an administrator does (connections cut at once), keeping
        its data for :meth:`restart`."""
        self._run(self.bindir / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop", check=False)

    def restart(self) -> None:
        """Start a halted server again on the same port, with the same data."""
        self._start_server()

    def url(self, dbname: str | None = None) -> str:
        return f"postgresql+psycopg2://gengen@127.0.0.1:{self.port}/{dbname or self.dbname}"

    def stop(self) -> None:
        try:
            self._run(self.bindir / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop", check=False)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
