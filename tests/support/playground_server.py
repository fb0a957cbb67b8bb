"""An openevi server wired to the scripted model, for the web tests (Node SDK test, browser test).

    .venv/bin/python -m tests.support.playground_server [--data-dir DIR]

Prints one JSON line `{"base_url", "api_key", "secret_key", "llm_url"}` once the server is up, then
runs until stdin closes (the parent went away) or SIGTERM/SIGINT, and stops both servers.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType

from tests.integration.chat_support import scripted_server
from tests.support.scripted_llm import Reply, ScriptedLLM

REPLY = "Hello from openevi! I heard you. How can I help you today?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, help="default: a fresh temporary directory")
    args = parser.parse_args()
    data_dir: Path = args.data_dir or Path(tempfile.mkdtemp(prefix="openevi-web-"))
    llm = ScriptedLLM(default=Reply(REPLY, chunk_words=2)).start()
    server = scripted_server(data_dir, llm)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server.start()
        info = {
            "base_url": server.base_url,
            "api_key": server.api_key,
            "secret_key": server.secret_key,
            "llm_url": llm.base_url,
            "log": str(server.log_path),
        }
        print(json.dumps(info), flush=True)

        def watch_stdin() -> None:
            sys.stdin.read()  # returns at EOF: the parent closed the pipe or died
            stop.set()

        threading.Thread(target=watch_stdin, daemon=True).start()
        stop.wait()
    finally:
        server.stop()
        llm.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
