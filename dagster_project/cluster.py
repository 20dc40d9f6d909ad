"""The distributed deployment on one machine, every part a real server: PostgreSQL (the Dagster
instance's storage), Redis (the Celery broker and result backend) and Celery workers, separate
processes that reach each other over TCP on free local ports, their data in one folder, each
stopped by its PID. `python -m dagster_project.cluster --workers 2` starts them and prints the
environment that `nwh run --executor celery` needs (docs/cluster.md)."""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from dagster_project.home import REPO_ROOT, write_instance_config

CELERY_CONFIG = REPO_ROOT / "deploy" / "celery.yaml"
POSTGRES_USER = "postgres"  # the server refuses to run as root; Debian's package creates this user


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _postgres_program(name: str) -> str:
    """`name` (initdb, postgres) from Debian's versioned folder, else from PATH."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name)]
    if not found[-1]:
        raise RuntimeError(f"PostgreSQL's {name} is not installed: apt-get install postgresql")
    return found[-1]


def _server_user() -> dict:
    """Popen arguments that run a server as POSTGRES_USER when we are root, else as ourselves."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(POSTGRES_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _wait(what: str, ready, timeout: float, process: subprocess.Popen) -> None:
    deadline = time.time() + timeout
    while not ready():
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode} while starting")
        if time.time() > deadline:
            raise TimeoutError(f"{what} was not ready within {timeout:.0f} s")
        time.sleep(0.2)


def _answers(port: int, request: bytes, reply: bytes) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(request)
            return s.recv(64).startswith(reply)
    except OSError:
        return False


def start_postgres(folder: Path, port: int) -> subprocess.Popen:
    """A PostgreSQL server on 127.0.0.1:`port` with a fresh cluster in `folder` and an empty
    database `dagster` owned by `nwh` (trust authentication: loopback only)."""
    folder.mkdir(parents=True)
    as_user = _server_user()
    if as_user:
        os.chown(folder, as_user["user"], as_user["group"])
    subprocess.run([_postgres_program("initdb"), "-D", str(folder / "data"), "-U", "nwh",
                    "--auth=trust", "--no-sync"], check=True, capture_output=True, **as_user)
    server = subprocess.Popen([_postgres_program("postgres"), "-D", str(folder / "data"), "-p",
                               str(port), "-k", str(folder), "-c", "listen_addresses=127.0.0.1",
                               "-c", "fsync=off"], stdout=subprocess.DEVNULL,
                              stderr=open(folder / "server.log", "w"), **as_user)
    _wait("PostgreSQL", lambda: _answers(port, b"\0\0\0\x08\x04\xd2\x16\x2f", b"N"), 60, server)
    create_database(port, "dagster")
    return server


def create_database(port: int, name: str) -> str:
    """An empty database `name` owned by `nwh` on the local server; its SQLAlchemy URL."""
    subprocess.run([_postgres_program("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U",
                    "nwh", name], check=True, capture_output=True)
    return f"postgresql+psycopg2://nwh@127.0.0.1:{port}/{name}"


def start_redis(folder: Path, port: int) -> subprocess.Popen:
    """A Redis server on 127.0.0.1:`port`, persisting nothing."""
    folder.mkdir(parents=True)
    program = shutil.which("redis-server")
    if not program:
        raise RuntimeError("redis-server is not installed: apt-get install redis-server")
    server = subprocess.Popen([program, "--port", str(port), "--bind", "127.0.0.1", "--dir",
                               str(folder), "--save", "", "--appendonly", "no"],
                              stdout=open(folder / "server.log", "w"), stderr=subprocess.STDOUT)
    _wait("Redis", lambda: _answers(port, b"PING\r\n", b"+PONG"), 30, server)
    return server


def start_worker(name: str, env: dict, log: Path) -> subprocess.Popen:
    """A Celery worker named `name` with one pool process, started as a deployment would
    (`dagster-celery worker start` on deploy/celery.yaml), in its own process group."""
    bin_dir = str(Path(sys.executable).parent)
    command = [f"{bin_dir}/dagster-celery", "worker", "start", "-A", "dagster_celery.app", "-y",
               str(CELERY_CONFIG), "-n", name, "--", "--concurrency", "1"]
    return subprocess.Popen(command, env={**env, "PATH": f"{bin_dir}:{env.get('PATH', '')}"},
                            stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(process: subprocess.Popen, *, group: bool = False, timeout: float = 30) -> None:
    """SIGTERM to the process (its group with `group`), SIGKILL after `timeout` seconds."""
    if process.poll() is not None:
        return
    send = (lambda sig: os.killpg(process.pid, sig)) if group else process.send_signal
    send(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        process.wait()


@dataclass
class Cluster:
    """The running servers and workers; `env` is what a run or a worker needs to reach them."""

    folder: Path
    env: dict
    servers: list[subprocess.Popen] = field(default_factory=list)
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)

    def add_worker(self, name: str, home: Path) -> subprocess.Popen:
        """Start worker `name` for the Neuron Warehouse home `home` (its Dagster instance)."""
        env = {**os.environ, **self.env, "NWH_HOME": str(home),
               "DAGSTER_HOME": str(write_instance_config(home, postgres=True)),
               "HF_HUB_OFFLINE": "1"}
        self.workers[name] = start_worker(name, env, self.folder / f"{name}.log")
        return self.workers[name]

    def use_database(self, name: str) -> None:
        """Put the Dagster instance of the runs and workers started from now in a new, empty
        database `name` (one instance per home, as separate deployments would have)."""
        port = urlparse(self.env["NWH_POSTGRES_URL"]).port
        self.env = {**self.env, "NWH_POSTGRES_URL": create_database(port, name)}

    def wait_for_workers(self, timeout: float = 120) -> None:
        """Until every worker answers a ping through the broker."""
        from dagster_celery.executor import CeleryExecutor
        from dagster_celery.make_app import make_app

        app = make_app(CeleryExecutor.for_cli(broker=self.env["NWH_CELERY_BROKER"],
                                              backend=self.env["NWH_CELERY_BACKEND"]).app_args())
        deadline, wanted = time.time() + timeout, set(self.workers)
        while True:
            answered = {next(iter(r)).split("@")[0] for r in app.control.ping(timeout=1.0)}
            if wanted <= answered:
                return
            dead = [n for n, p in self.workers.items() if p.poll() is not None]
            if dead or time.time() > deadline:
                raise RuntimeError(f"Celery workers {sorted(wanted - answered)} did not start "
                                   f"(see their logs in {self.folder})")

    def stop(self) -> None:
        for worker in self.workers.values():
            stop(worker, group=True)
        for server in reversed(self.servers):
            stop(server)


def start_cluster(folder: Path | None = None) -> Cluster:
    """PostgreSQL and Redis on free local ports, their data under `folder` (default: a new
    temporary folder); workers are added with :meth:`Cluster.add_worker`."""
    folder = Path(folder or tempfile.mkdtemp(prefix="nwh-cluster-"))
    folder.chmod(0o755)  # the database server runs as its own user
    pg_port, redis_port = free_port(), free_port()
    cluster = Cluster(folder, {
        "NWH_POSTGRES_URL": f"postgresql+psycopg2://nwh@127.0.0.1:{pg_port}/dagster",
        "NWH_CELERY_BROKER": f"redis://127.0.0.1:{redis_port}/0",
        "NWH_CELERY_BACKEND": f"redis://127.0.0.1:{redis_port}/1"})
    try:
        cluster.servers.append(start_postgres(folder / "postgres", pg_port))
        cluster.servers.append(start_redis(folder / "redis", redis_port))
    except BaseException:
        cluster.stop()
        raise
    return cluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2, help="Celery workers to start")
    parser.add_argument("--home", type=Path, help="the Neuron Warehouse home the workers serve "
                                                  "(default: $NWH_HOME or warehouse/)")
    args = parser.parse_args(argv)
    from dagster_project.home import default_home

    home = (args.home or default_home()).resolve()
    cluster = start_cluster()
    try:
        for i in range(1, args.workers + 1):
            cluster.add_worker(f"worker{i}", home)
        cluster.wait_for_workers()
        print(f"PostgreSQL, Redis and {args.workers} Celery workers are up (logs in "
              f"{cluster.folder}). In another shell:")
        for name, value in cluster.env.items():
            print(f"  export {name}={value}")
        print(f"  nwh --home {home} run --config <study.yaml> --executor celery\n"
              "Ctrl-C stops them all.", flush=True)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
