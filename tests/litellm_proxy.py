"""LiteLLM's proxy as a subprocess: a real third-party OpenAI-compatible server for the tests.

Each model of the proxy's config either answers from LiteLLM's own mock mode (``mock_response``,
``mock_delay`` in its ``litellm_params``: no provider, no network) or forwards to a server on
this machine (``api_base``).  The proxy runs from its own environment, because ``litellm[proxy]``
pins versions the project's dev environment does not use (``websockets<16``): the executable is
``$LLMSOCK_LITELLM``, else ``.venv-litellm/bin/litellm`` in the checkout (made by
``scripts/test.sh``), else ``litellm`` on the PATH.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.conftest import TIMEOUT

ROOT = Path(__file__).resolve().parent.parent
EXECUTABLE_ENV = "LLMSOCK_LITELLM"
VENV_EXECUTABLE = ROOT / ".venv-litellm" / "bin" / "litellm"

# The proxy imports a few hundred modules before it listens: tens of seconds on a busy machine.
# Below the per-test time limit (tests/conftest.py), which the first test's setup counts against.
START_TIMEOUT = TIMEOUT * 9
SHUTDOWN_GRACE = 2.0  # seconds for the proxy to stop by itself before it is killed

# Offline and self-contained: the bundled model price map instead of fetching it from GitHub, no
# .env read from the working directory.
_PROXY_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_MODE": "PRODUCTION",
    "LITELLM_LOG": "ERROR",
    "NO_COLOR": "1",
}
# Variables that would send the proxy elsewhere or change what it answers.
_DROPPED_ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "DATABASE_URL", "LITELLM_MASTER_KEY", "REDIS_HOST")


def find_executable() -> str | None:
    """Return the ``litellm`` executable to run, or None if none is installed."""
    given = os.environ.get(EXECUTABLE_ENV)
    if given:
        return given
    if VENV_EXECUTABLE.exists():
        return str(VENV_EXECUTABLE)
    return shutil.which("litellm")


def mock(name: str, **params: Any) -> dict[str, Any]:
    """Return a config entry for model ``name`` answered by LiteLLM's mock mode with ``params``.

    ``mock_response`` is the answer's text (streamed three characters a chunk), or one of the
    strings LiteLLM turns into an error (``"litellm.InternalServerError"``: HTTP 500; an
    ``"Exception: content_filter_policy..."`` text: HTTP 400 carrying that text); ``mock_delay``
    holds the answer back that many seconds.
    """
    return {"model_name": name, "litellm_params": {"model": f"openai/{name}", "api_key": "unused", **params}}


def forward(name: str, base_url: str) -> dict[str, Any]:
    """Return a config entry for model ``name`` that LiteLLM forwards to the server at ``base_url``."""
    return {
        "model_name": name,
        "litellm_params": {"model": f"openai/{name}", "api_base": base_url, "api_key": "unused"},
    }


class LiteLLMProxy:
    """One ``litellm`` proxy process on a free loopback port, serving ``models``."""

    def __init__(self, executable: str, models: list[dict[str, Any]], workdir: Path) -> None:
        """Prepare the proxy; nothing runs until :meth:`start`."""
        self.executable = executable
        self.models = models
        self.workdir = workdir
        self.master_key = "sk-" + secrets.token_hex(16)
        self.port = 0
        self.started_in = 0.0  # seconds from launch until it answered its readiness check
        self.log = workdir / "litellm.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """The API root to give an OpenAI client."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LiteLLMProxy:
        """Launch the proxy and wait until it answers; raise RuntimeError with its log if it does not."""
        config = self.workdir / "config.yaml"
        config.write_text(json.dumps(self._config(), indent=2))  # JSON is YAML
        self.port = _free_port()
        env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
        env.update(_PROXY_ENV, LITELLM_MASTER_KEY=self.master_key)
        command = [self.executable, "--config", str(config), "--host", "127.0.0.1", "--port", str(self.port)]
        started = time.monotonic()
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                command, cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_ready(started)
        self.started_in = time.monotonic() - started
        return self

    def stop(self) -> None:
        """Stop the proxy (idempotent): terminate, then kill if it lingers."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        # Uvicorn ends at once on SIGTERM unless a request is open (a held mock answer), which it
        # would wait for, a minute: the proxy keeps nothing worth a clean end, so it is killed then.
        process.terminate()
        try:
            process.wait(SHUTDOWN_GRACE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(TIMEOUT)

    def __enter__(self) -> LiteLLMProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _config(self) -> dict[str, Any]:
        # No retries anywhere: one request from llmsock is one attempt at the model, so errors
        # come back at once and the tests see exactly what the proxy answered.
        return {
            "model_list": self.models,
            "litellm_settings": {"num_retries": 0, "drop_params": False},
            "router_settings": {"num_retries": 0, "retry_after": 0},
        }

    def _wait_ready(self, started: float) -> None:
        deadline = started + START_TIMEOUT
        process = self._process
        assert process is not None
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self._process = None
                raise RuntimeError(f"litellm exited with {process.returncode}:\n{self._log_tail()}")
            if self._ready():
                return
            time.sleep(0.2)  # polling a child process: there is no event to wait on
        self.stop()
        raise RuntimeError(f"litellm did not answer within {START_TIMEOUT:g} s:\n{self._log_tail()}")

    def _ready(self) -> bool:
        url = f"http://127.0.0.1:{self.port}/health/readiness"
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def _log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
