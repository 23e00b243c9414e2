"""A test-only connector whose parser kills its own process, like a segfault or the OOM killer.

It speaks the `api` format under the provider name `crashing`; a body containing
`KILL-THE-WORKER` makes the parser SIGKILL the process it runs in, when that process was
started with HELPDESK_TEST_CRASH=1 (a worker subprocess of the test, never the test itself).
Importing this module registers it.
"""

from __future__ import annotations

import os
import signal

from helpdesk.connectors import register
from helpdesk.connectors.api import ApiConnector


@register
class CrashingConnector(ApiConnector):
    provider = "crashing"

    def parse(self, channel, raw):
        if b"KILL-THE-WORKER" in raw.body and os.environ.get("HELPDESK_TEST_CRASH") == "1":
            os.kill(os.getpid(), signal.SIGKILL)
        return super().parse(channel, raw)
