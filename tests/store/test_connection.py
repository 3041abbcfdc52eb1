"""Connecting: clear one-line failures, and the embedded Redis a first-time user gets."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from worker.store import embedded
from worker.store.connection import RedisUnavailable, client_from_url, connect, health, redact_url
from worker.store.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_passwords_are_redacted() -> None:
    assert redact_url("rediss://user:s3cret@cache.example:6380/2") == "rediss://user:***@cache.example:6380/2"
    assert redact_url("redis://:s3cret@localhost/0") == "redis://:***@localhost/0"
    assert redact_url("redis://localhost:6379/0") == "redis://localhost:6379/0"
    assert redact_url("unix:///run/redis.sock?db=1") == "unix:///run/redis.sock?db=1"


def test_an_unreachable_redis_is_one_clear_line_naming_the_url() -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    with pytest.raises(RedisUnavailable) as caught:
        connect(url)
    assert time.monotonic() - started < 2  # told at once, not after a minute of retries
    message = str(caught.value)
    assert "\n" not in message and "hunter2" not in message
    assert message.startswith("cannot use Redis at redis://:***@127.0.0.1:")
    assert "refused" in message.lower()
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_missing_unix_socket_is_reported(tmp_path) -> None:
    with pytest.raises(RedisUnavailable, match=r"unix://.*nope\.sock: .*No such file"):
        connect(f"unix://{tmp_path}/nope.sock")


def test_an_unsupported_scheme_is_reported() -> None:
    with pytest.raises(RedisUnavailable, match="unsupported scheme 'http'"):
        connect("http://localhost:6379")


def test_redis_url_from_the_environment_wins(monkeypatch, redis_url) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    client = connect(data_dir=Path("/nonexistent"))
    assert client.ping()
    report = health(client)
    assert report["ok"] and report["latency_ms"] >= 0 and report["version"]


def test_health_reports_a_dead_server_without_raising() -> None:
    client = client_from_url(f"redis://127.0.0.1:{free_port()}/0", retry=None)
    report = health(client)
    assert report["ok"] is False and "refused" in report["error"].lower()


def run(code: str, data_dir: Path, **env: str) -> str:
    """Run a short leadroute program in a fresh process with no REDIS_URL."""
    environ = {k: v for k, v in os.environ.items() if k != "REDIS_URL"} | env
    program = textwrap.dedent(code).format(data_dir=str(data_dir))
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_embedded_redis_persists_between_runs_and_stops_on_exit(tmp_path) -> None:
    first = run(
        """
        from worker.store.connection import connect
        from worker.store.embedded import embedded_url
        from worker.store.redis_store import RedisStore
        store = RedisStore(connect(None, "{data_dir}"))
        store.assign("ann")
        store.schedule("lead-1", 100, {{"tier": 1}})
        print(embedded_url("{data_dir}"), store.client.info("server")["redis_version"])
        """,
        tmp_path,
    )
    url, version = first.split()
    assert url.startswith("unix://") and version.startswith("6.2")
    # the server was stopped when its process exited
    with pytest.raises(RedisUnavailable):
        connect(url)
    second = run(
        """
        from worker.store.connection import connect
        from worker.store.redis_store import RedisStore
        store = RedisStore(connect(None, "{data_dir}"))
        print(store.loads(["ann"])["ann"], store.timer("lead-1").payload["tier"])
        """,
        tmp_path,
    )
    assert second == "1 1"
    assert (tmp_path / "redis" / "appendonly.aof").exists()


def test_child_processes_share_the_embedded_server(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    server = embedded.start_embedded(tmp_path)
    try:
        client = connect(None, tmp_path)
        client.set("from-parent", "1")
        # a child given the URL (as the demo does for Celery), and one given only the data dir
        assert (
            run(
                "import os, redis; print(redis.Redis.from_url(os.environ['REDIS_URL']).get('from-parent'))",
                tmp_path,
                REDIS_URL=server.url,
            )
            == "b'1'"
        )
        assert (
            run("from worker.store.connection import connect; print(connect(None, '{data_dir}').get('from-parent'))",
                tmp_path) == "1"
        )
        assert client.ping()  # a joining process does not stop the owner's server on exit
    finally:
        server.stop()
        embedded._embedded.clear()
    with pytest.raises(RedisUnavailable):
        connect(server.url)


def test_rediss_urls_speak_tls_and_report_certificate_failures(tmp_path) -> None:
    trustme = pytest.importorskip("trustme")
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server on PATH to run with TLS")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    port = free_port()
    server = subprocess.Popen(
        [binary, "--port", "0", "--tls-port", str(port), "--tls-auth-clients", "no", "--save", "",
         "--tls-cert-file", str(tmp_path / "cert.pem"), "--tls-key-file", str(tmp_path / "key.pem"),
         "--tls-ca-cert-file", str(tmp_path / "ca.pem"), "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={tmp_path / 'ca.pem'}"
        deadline = time.monotonic() + 10
        while True:
            if server.poll() is not None:
                pytest.skip("this redis-server was built without TLS")
            try:
                client = connect(url)
                break
            except RedisUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert client.ping()
        with pytest.raises(RedisUnavailable, match="certificate verify failed"):
            connect(f"rediss://127.0.0.1:{port}/0")  # not trusting the throwaway CA
    finally:
        server.terminate()
        server.wait(10)
