"""The live objects tools returned, kept in the kernel by session and call id (``chat.results``).

The model and the wire see a summary (:mod:`..tools.execution`); the object itself stays here, for
the user's next cell.  Call ids are unique only within a session (the builtin model numbers its
calls by turn), so each object is kept under its session and call id: ``results.of(session)`` is
one chat's view, and the view of every session gives a call id's latest object.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import ItemsView, Iterator, KeysView, Mapping, ValuesView
from typing import Any

LIMIT = 100
"""Live results kept per server, oldest forgotten first."""


class Results(Mapping[str, Any]):
    """The last :data:`LIMIT` live results by call id, of one session or of all (read-only view).

    The server's loop adds (:meth:`keep`); the kernel's main thread reads: every access takes the
    lock, and iteration goes over a copy of the keys.
    """

    def __init__(self, limit: int = LIMIT) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self.limit = limit
        self._items: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()
        self._session: str | None = None  # None: every session

    def keep(self, call_id: str, value: Any, *, session: str = "") -> None:
        """Keep ``value`` as ``session``'s live result of ``call_id``; forget the oldest past the limit."""
        key = (session, call_id)
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.limit:
                self._items.popitem(last=False)

    def of(self, session: str) -> Results:
        """Return the view of ``session``'s results (it shares this store and its lock)."""
        view = Results.__new__(Results)
        view.limit, view._items, view._lock, view._session = self.limit, self._items, self._lock, session
        return view

    def copy(self) -> dict[str, Any]:
        """Return the results kept now, oldest first, as a plain dict (a call id's latest object)."""
        with self._lock:
            pairs = list(self._items.items())
        out: dict[str, Any] = {}
        for (session, call_id), value in pairs:
            if self._session is None or session == self._session:
                out.pop(call_id, None)  # the latest of a call id comes last
                out[call_id] = value
        return out

    # The views are of a copy: a result forgotten while a reader goes through them is no KeyError.
    def keys(self) -> KeysView[str]:
        return self.copy().keys()

    def items(self) -> ItemsView[str, Any]:
        return self.copy().items()

    def values(self) -> ValuesView[Any]:
        return self.copy().values()

    def __getitem__(self, call_id: str) -> Any:
        return self.copy()[call_id]

    def __len__(self) -> int:
        return len(self.copy())

    def __iter__(self) -> Iterator[str]:
        return iter(self.copy())

    def __contains__(self, call_id: object) -> bool:
        return call_id in self.copy()

    def __repr__(self) -> str:
        kinds = ", ".join(f"{key!r}: {type(value).__name__}" for key, value in self.copy().items())
        return f"Results({{{kinds}}})"
