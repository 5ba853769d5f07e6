"""Real object stores for the tests: moto's S3 server and gcp-storage-emulator, each in its own
process on 127.0.0.1 and a free port (no in-process mocks).

moto runs as ``ThreadedMotoServer`` inside a child process: deltalake's filesystem handler calls
S3 while holding the GIL, which deadlocks against a server thread of the same interpreter. One
server per test session (per xdist worker); every test gets fresh buckets.

Imported by the test modules that need them (``from tests.integration.conftest_objectstore import
…``); the fixtures set the standard environment (``AWS_ENDPOINT_URL``, ``AWS_ALLOW_HTTP``, dummy
credentials, region; ``STORAGE_EMULATOR_HOST``) that boto3, google-cloud-storage, Polars and
deltalake all read.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

MOTO_SCRIPT = """
import signal, sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
print("ready", flush=True)
signal.sigwait([signal.SIGTERM, signal.SIGINT])
server.stop()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start in {timeout}s")


@dataclass
class MotoServer:
    endpoint: str
    proc: subprocess.Popen

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="testing",
                            aws_secret_access_key="testing", region_name="us-east-1")

    def new_bucket(self, stem: str = "focus") -> str:
        name = f"{stem}-{uuid.uuid4().hex[:10]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        out = []
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out.extend(o["Key"] for o in page.get("Contents", []))
        return sorted(out)

    def upload_tree(self, local: Path, bucket: str, prefix: str) -> list[str]:
        client, keys = self.client(), []
        for p in sorted(local.rglob("*")):
            if p.is_file():
                key = f"{prefix.strip('/')}/{p.relative_to(local).as_posix()}".lstrip("/")
                client.upload_file(str(p), bucket, key)
                keys.append(key)
        return keys


@pytest.fixture(scope="session")
def moto_server():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", MOTO_SCRIPT, str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, proc)
        yield MotoServer(f"http://127.0.0.1:{port}", proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def s3(moto_server, monkeypatch) -> MotoServer:
    """moto's S3 server with the environment every client reads pointing at it."""
    for k, v in moto_server.env.items():
        monkeypatch.setenv(k, v)
    return moto_server


@dataclass
class GcsEmulator:
    endpoint: str
    proc: subprocess.Popen

    def client(self):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(project="test", credentials=AnonymousCredentials(),
                              client_options={"api_endpoint": self.endpoint})

    def new_bucket(self, stem: str = "focus") -> str:
        name = f"{stem}-{uuid.uuid4().hex[:10]}"
        self.client().create_bucket(name)
        return name


@pytest.fixture(scope="session")
def gcs_server():
    pytest.importorskip("gcp_storage_emulator", reason="pip install gcp-storage-emulator")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gcp_storage_emulator", "start", "--port", str(port),
                             "--host", "127.0.0.1", "--in-memory", "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, proc)
        yield GcsEmulator(f"http://127.0.0.1:{port}", proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def gcs(gcs_server, monkeypatch) -> GcsEmulator:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.endpoint)
    return gcs_server


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child Python process running package code."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env
