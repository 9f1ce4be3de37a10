"""The kernel's environment settings: the one place the package reads ``LLMSOCK_*`` variables.

docs/configuration.md, section 6, lists every variable read here (a test compares the
two).  Reading is pure: :meth:`Settings.from_environ` takes the environment as a
mapping and says what it found wrong in ``transport_warning`` instead of logging, so the
caller decides when a warning is due (the kernel logs a bad ``LLMSOCK_TRANSPORT``
each time it sends a view the server's address, and at no other moment).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

TRANSPORTS = ("auto", "proxy", "direct", "comm")

STORE = "LLMSOCK_STORE"
REDIS_URL = "LLMSOCK_REDIS_URL"
TRANSPORT = "LLMSOCK_TRANSPORT"
PROXY_URL = "LLMSOCK_PROXY_URL"
CONNECT_TIMEOUT = "LLMSOCK_CONNECT_TIMEOUT"
DEFAULT_CONNECT_TIMEOUT = 4.0  # seconds
# Set by Jupyter Server: the notebook's path under its root (the kernel starts in its folder).
JUPYTER_NOTEBOOK = "JPY_SESSION_NAME"

# ``{NAME}`` with an upper-case NAME in the proxy URL template; ``{port}`` and the like are
# lower case and left for the browser, which knows the page.
_PLACEHOLDER = re.compile(r"\{([A-Z][A-Z0-9_]*)\}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    """What the kernel's environment asks of llmsock, read at one moment.

    Attributes:
        store: the store spec of ``$LLMSOCK_STORE`` (``notebook``, ``memory``, ``file``,
            ``file:<directory>``, ``redis``, ``redis://...``); checked when the store is made.
        store_chosen: whether ``$LLMSOCK_STORE`` names a store (else the default applies).
        redis_url: ``$LLMSOCK_REDIS_URL``, the Redis the ``redis`` store spec means, and the
            default store when ``$LLMSOCK_STORE`` names none; None when unset or empty.  Its
            password is never shown (not in ``repr`` either).
        transport: the only transport chat views may use (``$LLMSOCK_TRANSPORT``), ``auto``
            when unset or not one of :data:`TRANSPORTS`.
        proxy_url: ``$LLMSOCK_PROXY_URL`` with ``{NAME}`` filled in from the environment,
            or None when unset or empty.
        jupyter_notebook: ``$JPY_SESSION_NAME``, the notebook's path Jupyter Server gives.
        connect_timeout: seconds a chat view gives each rung of its transport ladder to
            answer (``$LLMSOCK_CONNECT_TIMEOUT``, default 4); a rung whose socket opened
            gets three times that.
        transport_warning: the log line a ``$LLMSOCK_TRANSPORT`` that names no transport
            calls for, or None.
        connect_timeout_warning: the log line a ``$LLMSOCK_CONNECT_TIMEOUT`` that is not a
            positive number of seconds calls for, or None.
    """

    store: str = "notebook"
    store_chosen: bool = False
    redis_url: str | None = field(default=None, repr=False)
    transport: str = "auto"
    proxy_url: str | None = None
    jupyter_notebook: str | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    transport_warning: str | None = None
    connect_timeout_warning: str | None = None

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, not {self.transport!r}")
        if not (math.isfinite(self.connect_timeout) and self.connect_timeout > 0):
            raise ValueError(f"connect_timeout must be a positive number of seconds: {self.connect_timeout}")

    @property
    def connect_timeout_ms(self) -> int:
        """The connect timeout in whole milliseconds: the ``connectTimeoutMs`` a view is sent."""
        return max(1, round(self.connect_timeout * 1000))

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """Return the settings ``environ`` (the kernel's environment) gives."""
        transport, warning = _transport(environ.get(TRANSPORT, "auto"))
        timeout, timeout_warning = _connect_timeout(environ.get(CONNECT_TIMEOUT, ""))
        return cls(
            store=environ.get(STORE, "notebook"),
            store_chosen=bool(environ.get(STORE, "").strip()),
            redis_url=environ.get(REDIS_URL, "").strip() or None,
            transport=transport,
            proxy_url=_proxy_url(environ.get(PROXY_URL), environ),
            jupyter_notebook=environ.get(JUPYTER_NOTEBOOK),
            connect_timeout=timeout,
            transport_warning=warning,
            connect_timeout_warning=timeout_warning,
        )

    @classmethod
    def current(cls) -> Settings:
        """Return the settings of this process's environment as it is now."""
        return cls.from_environ(os.environ)


def _transport(raw: str) -> tuple[str, str | None]:
    """Return the transport ``raw`` names (``auto`` if none), and the warning if it names none."""
    value = raw.strip().lower() or "auto"
    if value in TRANSPORTS:
        return value, None
    return "auto", f"llmsock: {TRANSPORT}={value!r} is not one of {', '.join(TRANSPORTS)}; using auto"


def _connect_timeout(raw: str) -> tuple[float, str | None]:
    """Return the seconds ``raw`` gives (the default if unset), and the warning if it gives none."""
    text = raw.strip()
    if not text:
        return DEFAULT_CONNECT_TIMEOUT, None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if math.isfinite(value) and value > 0:
        return value, None
    warning = (
        f"llmsock: {CONNECT_TIMEOUT}={text!r} is not a positive number of seconds; "
        f"using {DEFAULT_CONNECT_TIMEOUT:g}"
    )
    return DEFAULT_CONNECT_TIMEOUT, warning


def _proxy_url(template: str | None, environ: Mapping[str, str]) -> str | None:
    """Return ``template`` with each ``{NAME}`` taken from ``environ`` (kept when unset)."""
    if not template:
        return None
    return _PLACEHOLDER.sub(lambda m: environ.get(m.group(1), m.group(0)), template)
