"""Attachment bytes on disk: content-addressed, written whole, from any number of workers."""

from __future__ import annotations

import threading

from helpdesk.config import from_environment
from helpdesk.services.ingest import attachments


def test_workers_storing_the_same_bytes_at_once_each_get_the_whole_file(app, tmp_path):
    content = b"the logo in every signature " * 20_000
    app.config["DATA_DIR"], before = str(tmp_path), app.config["DATA_DIR"]
    failures: list[BaseException] = []
    start = threading.Barrier(8)

    def store() -> None:
        with app.app_context():
            start.wait()
            try:
                attachments.store_bytes(content)
            except BaseException as exc:  # noqa: BLE001 (collected and asserted below)
                failures.append(exc)

    try:
        threads = [threading.Thread(target=store) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        with app.app_context():
            relative, _digest = attachments.store_bytes(content)
            assert attachments.data_path(relative).read_bytes() == content
    finally:
        app.config["DATA_DIR"] = before
    assert failures == []
    [stored] = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert stored.name == relative.split("/")[-1]
    # as a plain write makes it (mkstemp alone: 0600, unreadable to a web process of
    # another uid)
    assert stored.stat().st_mode & 0o777 == 0o666 & ~attachments._UMASK


def test_a_relative_data_folder_is_taken_from_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HELPDESK_DATA_DIR", "files")
    assert from_environment()["DATA_DIR"] == str(tmp_path / "files")
