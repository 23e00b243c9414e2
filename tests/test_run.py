"""`helpdesk run`, what `make run` starts: on SQLite and an embedded Redis, a first-run admin,
the API and a worker that turns a webhook into a ticket; Ctrl-C stops every process it
started (web, its gunicorn worker, workers, RQ's scheduler, Redis) and exits 0."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

PROJECT = Path(__file__).resolve().parent.parent
EMAIL = (b"From: Ana <ana@example.com>\r\nTo: support@acme.test\r\nSubject: Hello\r\n"
         b"Message-ID: <run-1@example.com>\r\nContent-Type: text/plain\r\n\r\nAre you there?\r\n")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _descendants(pid: int) -> set[int]:
    """Every process below `pid` (children lead sessions of their own, so by parent)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return False


def _wait(check, timeout: float, what: str, output: list[str]):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except requests.RequestException:
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout} s; helpdesk run said:\n{''.join(output)}")


def test_helpdesk_run_serves_a_webhook_to_a_ticket_and_ctrl_c_stops_everything(tmp_path):
    port = _free_port()
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "REDIS_URL", "HELPDESK_SECRET_KEY")}
    env.update(HELPDESK_INSTANCE_DIR=str(tmp_path / "instance"), PYTHONUNBUFFERED="1")
    run = subprocess.Popen([sys.executable, "-m", "helpdesk.cli", "run", "--port", str(port)],
                           cwd=PROJECT, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(run.stdout), daemon=True)
    reader.start()
    base = f"http://127.0.0.1:{port}"
    started: set[int] = set()
    try:
        _wait(lambda: requests.get(f"{base}/readyz", timeout=2).status_code == 200, 90,
              "readyz did not answer 200", output)
        token = next(word for line in output for word in line.split() if word.startswith("hd_"))
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {token}"
        channel = api.post(f"{base}/api/v1/channels", json={
            "name": "mail", "kind": "email", "provider": "raw_mime",
            "settings": {"address": "support@acme.test"}}, timeout=10)
        assert channel.status_code == 201, channel.text
        posted = requests.post(f"{base}/webhooks/raw_mime/{channel.json()['key']}", data=EMAIL,
                               headers={"Content-Type": "message/rfc822"}, timeout=10)
        assert posted.status_code == 200, posted.text
        tickets = _wait(lambda: api.get(f"{base}/api/v1/tickets", timeout=5).json()["items"],
                        30, "the worker made no ticket", output)
        assert [ticket["subject"] for ticket in tickets] == ["Hello"]
        started = _descendants(run.pid)
        assert len(started) >= 4, started  # web + its gunicorn worker, worker + scheduler

        run.send_signal(signal.SIGINT)  # Ctrl-C
        assert run.wait(30) == 0
    finally:
        if run.poll() is None:  # the test failed before its Ctrl-C: stop what it started
            run.send_signal(signal.SIGINT)
            try:
                run.wait(30)
            except subprocess.TimeoutExpired:
                run.kill()
                run.wait()
    try:
        _wait(lambda: not [pid for pid in started if _alive(pid)], 5,
              "processes were left running", output)
    finally:
        for pid in started:  # whatever was left (the test failed): not for the next test
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    reader.join(5)  # the output ends once nobody holds the pipe
    run.stdout.close()
    assert "stopped" in "".join(output)
    assert not (tmp_path / "instance" / "redis.url").exists()
    # What the run stored stays readable after it: the channel's secrets are encrypted with
    # the instance's kept key, not one made up for that run (the next run, or any other
    # command, could not read them: every channel answered 500).
    listed = subprocess.run([sys.executable, "-m", "helpdesk.cli", "channels", "list"],
                            cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and channel.json()["key"] in listed.stdout, listed
