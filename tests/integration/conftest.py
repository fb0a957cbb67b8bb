"""Fixtures shared by the integration tests: the scripted model, a server wired to it, a webhook receiver.

Module-scoped, so each test module gets its own (as when every module declared them).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.chat_support import scripted_server
from tests.integration.live_support import start_receiver
from tests.server import ServerProcess
from tests.support.scripted_llm import ScriptedLLM
from tests.webhook_receiver import Receiver


@pytest.fixture(scope="module")
def llm() -> Iterator[ScriptedLLM]:
    """The scripted OpenAI-style model, on a free port of 127.0.0.1."""
    model = ScriptedLLM().start()
    yield model
    model.stop()


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory: pytest.TempPathFactory, llm: ScriptedLLM) -> Iterator[ServerProcess]:
    """A server whose default language model is `llm`."""
    proc = scripted_server(Path(tmp_path_factory.mktemp("chat")), llm)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on a free port of 127.0.0.1."""
    hooks = start_receiver()
    yield hooks
    hooks.stop()
