"""A test-only connector whose parser kills its own process, like a segfault or the OOM killer.

It speaks the `api` format under the provider name `crashing`; a body containing
`KILL-THE-WORKER` makes the parser SIGKILL the process it runs in, when that process was
started with HELPDESK_TEST_CRASH=1 (a worker subprocess of the test, never the test itself).
A body containing `FAIL-AT-COMMIT` parses into a message whose attachment's size no integer
column holds: the batch's final write fails, on every database (a parser of ours bounds what
it reads; this one stands for the bug that one day will not). Importing this module
registers it.
"""

from __future__ import annotations

import os
import signal

from helpdesk.connectors import register
from helpdesk.connectors.api import ApiConnector
from helpdesk.connectors.base import AttachmentIn


@register
class CrashingConnector(ApiConnector):
    provider = "crashing"

    def parse(self, channel, raw):
        if b"KILL-THE-WORKER" in raw.body and os.environ.get("HELPDESK_TEST_CRASH") == "1":
            os.kill(os.getpid(), signal.SIGKILL)
        events = super().parse(channel, raw)
        if b"FAIL-AT-COMMIT" in raw.body:
            for event in events:
                event.attachments = [AttachmentIn(
                    filename="a.pdf", content_type="application/pdf", size=10**30,
                    url="https://cdn.example/a.pdf")]
        return events
