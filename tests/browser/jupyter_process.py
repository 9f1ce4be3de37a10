"""A real Jupyter server (JupyterLab or Notebook 7) in a subprocess, private dirs, its log in a file."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FRONTENDS = ("lab", "notebook")
# A host name that does not look like this machine; chromium resolves it to 127.0.0.1.
REMOTE_HOST = "lab.llmsock.test"


@dataclass
class JupyterServer:
    """One ``jupyter lab`` or ``jupyter notebook`` process on 127.0.0.1 with a random token."""

    frontend: str
    root_dir: Path
    home: Path
    log_path: Path
    # Variables set in the server's environment, so its kernels inherit them.
    extra_env: dict[str, str] = field(default_factory=dict)
    token: str = field(default_factory=lambda: secrets.token_hex(24))
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def put_setting(self, plugin: str, values: dict[str, Any], timeout: float) -> None:
        """Set a front-end setting of ``plugin`` (e.g. the theme) for the pages opened afterwards."""
        request = urllib.request.Request(
            f"{self.base_url}/lab/api/settings/{plugin}",
            method="PUT",
            data=json.dumps({"raw": json.dumps(values)}).encode(),
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            assert response.status == 204, response.status

    def notebook_url(self, name: str, host: str = "127.0.0.1") -> str:
        """Return the address that opens notebook ``name`` (in the root dir) in this front end.

        ``host`` may be ``REMOTE_HOST``: the browser maps it to 127.0.0.1, but to the page it
        looks like a remote machine (as on JupyterHub).
        """
        route = "lab/tree" if self.frontend == "lab" else "notebooks"
        return f"http://{host}:{self.port}/{route}/{name}?token={self.token}"

    def start(self, timeout: float) -> JupyterServer:
        """Start the server and wait until ``/api/status`` answers, or raise with the log's tail."""
        self.port = _free_port()
        self.root_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self._command(), stdout=log, stderr=subprocess.STDOUT, env=self._environment(), cwd=self.root_dir
        )
        log.close()  # the child holds its own descriptor
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop(timeout)
            raise
        return self

    def stop(self, timeout: float) -> None:
        """Terminate the server (and so its kernels); kill it if it does not exit in time."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def api(self, method: str, path: str, timeout: float = 5.0) -> Any:
        """Call the server's REST API with the token; return the decoded JSON body (or None)."""
        request = urllib.request.Request(
            f"{self.base_url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """Shut down every kernel of the server, so the next test starts with a quiet machine."""
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}", timeout=30)
        for kernel in self.api("GET", "/api/kernels"):
            self.api("DELETE", f"/api/kernels/{kernel['id']}", timeout=30)

    def log_tail(self, lines: int = 40) -> str:
        """Return the end of the server's log, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "jupyter",
            self.frontend,
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={self.root_dir}",
            "--ServerApp.open_browser=False",
            f"--IdentityProvider.token={self.token}",
            # No announcements, news feed or update check: no network, no popups over the notebook.
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",  # never asks PyPI
            "--ServerApp.terminals_enabled=False",
            # Serve pages asked for as REMOTE_HOST too (Jupyter refuses unknown Host names).
            "--ServerApp.local_hostnames=localhost",
            f"--ServerApp.local_hostnames={REMOTE_HOST}",
            *(["--ServerApp.allow_root=True"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
        ]

    def _environment(self) -> dict[str, str]:
        # Private user dirs; the environment's own share/jupyter (kernelspec, lab extensions of
        # anywidget and jupyter-widgets) stays on the path because it is sys.prefix's.
        env = dict(os.environ)
        for name, sub in (
            ("JUPYTER_CONFIG_DIR", "config"),
            ("JUPYTER_DATA_DIR", "data"),
            ("JUPYTER_RUNTIME_DIR", "runtime"),
            ("JUPYTERLAB_SETTINGS_DIR", "settings"),
            ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
            ("IPYTHONDIR", "ipython"),
        ):
            path = self.home / sub
            path.mkdir(parents=True, exist_ok=True)
            env[name] = str(path)
        env.pop("JUPYTER_PATH", None)
        _write_settings(self.home / "settings")
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env.update(self.extra_env)
        return env

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"{self.base_url}/api/status?token={self.token}"
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"jupyter {self.frontend} exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=1.0) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"jupyter {self.frontend} not ready within {timeout} s:\n{self.log_tail()}"
                )
            time.sleep(0.1)  # readiness polling, bounded by the deadline above


# User settings written before the server starts (JUPYTERLAB_SETTINGS_DIR is private to it).
_SETTINGS = {
    # Answer "Jupyter news?" (Never) before it is asked: its toast covers the notebook.
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    # Every cell stays in the DOM: no virtualised cells that locators or screenshots miss.
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    # Widget state goes into the saved notebook, so the token test checks it too.
    "@jupyter-widgets/jupyterlab-manager/plugin": {"saveState": True},
}


def _write_settings(settings_dir: Path) -> None:
    """Write the user settings both front ends read (Notebook 7 shares JupyterLab's)."""
    for plugin, values in _SETTINGS.items():
        path = settings_dir / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
