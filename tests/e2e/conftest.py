"""Fixtures of the end-to-end tests: Redis and PostgreSQL started by ``.ci/services.sh`` on free ports in a
folder of the system's temporary directory, and child processes (Celery workers, the Dagster daemon) each in its own process
group, killed with everything they started at teardown, even when the test fails.

moto's S3 server comes from ``tests.integration.conftest_objectstore`` (imported, not copied).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest_objectstore import free_port, moto_server, s3  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / ".ci" / "services.sh"
NOT_INSTALLABLE = 3  # services.sh: a server is missing and cannot be installed


@dataclass(frozen=True)
class Services:
    redis_url: str
    postgres_url: str
    folder: Path


@pytest.fixture(scope="module")
def services():
    """Redis and PostgreSQL on 127.0.0.1 (installed by services.sh when missing and installable)."""
    # Not in the checkout: PostgreSQL runs as its own user when the tests run as root, and a checkout in a
    # private folder (mktemp -d, a home directory) cannot be entered by it. The system's temporary
    # directory can; the folder itself is opened to it.
    folder = Path(tempfile.mkdtemp(prefix="focus-e2e-services-"))
    folder.chmod(0o755)
    redis_port, postgres_port = free_port(), free_port()
    env = {**os.environ, "FOCUS_SERVICES_DIR": str(folder), "FOCUS_REDIS_PORT": str(redis_port),
           "FOCUS_POSTGRES_PORT": str(postgres_port)}
    started = subprocess.run(["bash", str(SERVICES), "start"], env=env, capture_output=True, text=True)
    try:
        if started.returncode == NOT_INSTALLABLE:
            pytest.skip(f"redis-server / PostgreSQL absent and not installable: {started.stdout}{started.stderr}")
        assert started.returncode == 0, f"{SERVICES} start failed:\n{started.stdout}{started.stderr}"
        yield Services(f"redis://127.0.0.1:{redis_port}/0",
                       f"postgresql+psycopg2://postgres@127.0.0.1:{postgres_port}/dagster", folder)
    finally:
        subprocess.run(["bash", str(SERVICES), "stop"], env=env, capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


class ProcessGroups:
    """Child processes, each the leader of its own process group (its children die with it)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.started: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.log(name), "w")  # noqa: SIM115 (the child holds it)
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=ROOT)
        self.started[name] = proc
        return proc

    def log(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(self.started[name].pid, sig)
        except ProcessLookupError:
            pass

    def stop_all(self) -> None:
        for name in self.started:
            self.kill(name, signal.SIGTERM)
        deadline = time.time() + 15
        for proc in self.started.values():
            try:
                proc.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass
        for name in self.started:  # whatever is left of each group, the group leader exited or not
            self.kill(name, signal.SIGKILL)
        for proc in self.started.values():
            proc.wait()


@pytest.fixture
def processes(tmp_path):
    groups = ProcessGroups(tmp_path)
    try:
        yield groups
    finally:
        groups.stop_all()
