"""Summaries of live objects for a model: every kind, the caps, hostile values, masking."""

from __future__ import annotations

import collections
import dataclasses
import importlib.util
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsock_widget.context import Summary, looks_secret, mask_text, summarize
from llmsock_widget.context.secrets import NAME_MASK

HAS_PANDAS = importlib.util.find_spec("pandas") is not None
HAS_POLARS = importlib.util.find_spec("polars") is not None
needs_pandas = pytest.mark.skipif(not HAS_PANDAS, reason="pandas is not installed (the dev extra has it)")
needs_polars = pytest.mark.skipif(not HAS_POLARS, reason="polars is not installed (optional)")

OPENAI_KEY = "sk-proj-" + "A1b2C3d4" * 6
GITHUB_TOKEN = "ghp_" + "x1Y2z3" * 6
AWS_KEY_ID = "AKIA" + "ABCDEFGHIJKLMNOP"
SLACK_TOKEN = "xoxb-1234567890-abcdefghijkl"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
SECRETS = [OPENAI_KEY, GITHUB_TOKEN, AWS_KEY_ID, SLACK_TOKEN, JWT]


# -- kinds -----------------------------------------------------------------------------------


@needs_pandas
def test_a_pandas_frame_shows_its_shape_dtypes_and_first_rows() -> None:
    import pandas as pd

    frame = pd.DataFrame({"city": ["Oslo", "Lima", "Pune", "Kyiv", "Baku", "Rome"], "people": range(6)})
    summary = summarize("df", frame)
    assert summary.kind == "DataFrame"
    lines = summary.text.splitlines()
    assert lines[0] == "df: pandas.DataFrame, 6 rows x 2 columns"
    assert "city" in lines[1] and "people int64" in lines[1]
    assert "| 4 | Baku | 4 |" in summary.text and "Rome" not in summary.text  # five rows, not six
    assert summary.truncated and not summary.masked


@needs_pandas
def test_a_wide_frame_shows_twelve_columns_and_cuts_long_cells() -> None:
    import pandas as pd

    frame = pd.DataFrame({f"c{i}": ["v" * 500] for i in range(30)})
    text = summarize("wide", frame).text
    header = next(line for line in text.splitlines() if line.startswith("| (index)"))
    assert header.count("|") == 14  # the index and 12 columns
    assert "12 of 30 columns" in text
    assert max(len(cell.strip()) for cell in text.splitlines()[-1].split("|")) <= 40


@needs_pandas
def test_a_pandas_series_shows_its_name_length_dtype_and_values() -> None:
    import pandas as pd

    summary = summarize("s", pd.Series(range(100), name="speed", dtype="int32"))
    assert summary.kind == "Series"
    assert summary.text.splitlines()[0] == "s: pandas.Series 'speed', length 100, dtype int32"
    assert "9: 9" in summary.text and "10: 10" not in summary.text


@needs_polars
def test_a_polars_frame_shows_its_schema_and_first_rows() -> None:
    import polars as pl

    frame = pl.DataFrame({"name": ["a", "b", "c", "d", "e", "f"], "n": [1, 2, 3, 4, 5, 6]})
    summary = summarize("pf", frame)
    assert summary.kind == "DataFrame"
    assert summary.text.splitlines()[0] == "pf: polars.DataFrame, 6 rows x 2 columns"
    assert "name String" in summary.text and "n Int64" in summary.text
    assert "| e | 5 |" in summary.text and "| f | 6 |" not in summary.text


@needs_polars
def test_a_polars_series_shows_its_values() -> None:
    import polars as pl

    summary = summarize("ps", pl.Series("x", [1.5, 2.5]))
    assert summary.kind == "Series"
    assert "polars.Series 'x', length 2, dtype Float64" in summary.text and "1: 2.5" in summary.text


@needs_pandas
def test_a_numpy_array_shows_shape_dtype_and_a_few_values() -> None:
    import numpy as np

    summary = summarize("a", np.arange(1_000_000, dtype=np.int32).reshape(1000, 1000))
    assert summary.kind == "ndarray"
    assert "shape (1000, 1000), dtype int32, 1,000,000 values" in summary.text
    assert "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]" in summary.text and summary.truncated


def test_containers_show_their_length_and_first_items() -> None:
    summary = summarize("xs", list(range(100)))
    assert (summary.kind, summary.truncated) == ("list", True)
    assert summary.text == "xs: list, len 100\n[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ... 90 more]"
    assert summarize("t", (1, "a")).text == "t: tuple, len 2\n(1, 'a')"
    assert summarize("d", {"a": [1, 2]}).text == "d: dict, len 1\n{'a': [1, 2]}"
    assert summarize("s", {3}).text == "s: set, len 1\n{3}"
    assert (
        summarize("q", collections.deque([1])).text == "q: collections.deque, len 1\ncollections.deque([1])"
    )
    assert not summarize("t", (1, "a")).truncated


def test_strings_and_bytes_show_their_length_and_start() -> None:
    summary = summarize("s", "hello")
    assert (summary.kind, summary.text, summary.truncated) == ("str", "s: str, 5 chars\nhello", False)
    data = summarize("b", b"\x00\x01" * 100)
    assert (
        data.kind == "bytes" and data.text.startswith("b: bytes, 200 bytes\nb'\\x00\\x01") and data.truncated
    )


def _scale(x: float, factor: int = 2) -> float:
    """Multiply x by factor.

    More words.
    """
    return x * factor


class Point:
    """A point in the plane."""

    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def norm(self) -> float:
        return float((self.x**2 + self.y**2) ** 0.5)


def test_a_function_shows_its_signature_docstring_and_source() -> None:
    summary = summarize("scale", _scale)
    assert summary.kind == "function"
    lines = summary.text.splitlines()
    assert (
        lines[0]
        == "scale: function tests.unit.test_context_summary._scale(x: 'float', factor: 'int' = 2) -> 'float'"
    )
    assert lines[1] == "doc: Multiply x by factor."
    assert "    return x * factor" in summary.text


def test_a_class_shows_its_signature_bases_methods_and_source() -> None:
    summary = summarize("Point", Point)
    assert summary.kind == "class"
    assert "class tests.unit.test_context_summary.Point(x: 'int', y: 'int') -> 'None'" in summary.text
    assert "defines: norm" in summary.text and "doc: A point in the plane." in summary.text
    assert "def norm(self) -> float:" in summary.text


def test_a_builtin_function_and_a_module() -> None:
    assert summarize("ln", len).text.startswith("ln: function len(obj, /)")
    module = summarize("j", json)
    assert module.kind == "module"
    assert module.text.splitlines()[:2] == ["j: module json", f"file: {json.__file__}"]


def test_any_other_object_shows_its_type_and_repr() -> None:
    summary = summarize("p", Point(1, 2))
    assert summary.kind == "object"
    assert summary.text.startswith(
        "p: tests.unit.test_context_summary.Point\n<tests.unit.test_context_summary.Point object"
    )
    assert (summarize("n", None).kind, summarize("n", None).text) == ("None", "n: NoneType\nNone")
    assert summarize("i", 42).text == "i: int\n42"


# -- caps --------------------------------------------------------------------------------------


@needs_pandas
def test_a_million_row_frame_is_summarized_in_the_cap() -> None:
    import numpy as np
    import pandas as pd

    n = 1_000_000
    frame = pd.DataFrame({"i": np.arange(n), "f": np.zeros(n), "s": ["text"] * n})
    summary = summarize("big", frame, max_chars=1000)
    assert len(summary.text) <= 1000 and "1,000,000 rows x 3 columns" in summary.text
    assert summary.text.count("\n| ") == 7  # header, separator and five rows


HUGE: dict[str, Callable[[], object]] = {
    "million-list": lambda: list(range(10**6)),
    "10MB-str": lambda: "x" * 10_000_000,
    "10MB-bytes": lambda: b"y" * 10_000_000,
    "big-dict": lambda: {i: str(i) for i in range(10**6)},
}


@pytest.mark.parametrize("make", HUGE.values(), ids=HUGE.keys())
def test_huge_values_stay_in_the_cap(make: Callable[[], object]) -> None:
    summary = summarize("v", make(), max_chars=500)
    assert len(summary.text) <= 500 and summary.truncated


def test_a_deep_nested_dict_stops_at_the_depth_limit() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(10_000):
        node["next"] = node = {}
    summary = summarize("deep", deep)
    assert (
        summary.text == "deep: dict, len 1\n{'next': {'next': {'next': <dict len 1>}}}" and summary.truncated
    )


def test_a_self_referencing_list_is_shown_as_a_cycle() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    assert summarize("loop", loop).text == "loop: list, len 2\n[1, <cycle: the same list>]"


def test_a_tiny_cap_is_still_respected() -> None:
    assert len(summarize("xs", list(range(100)), max_chars=3).text) == 3
    assert len(summarize("api_key", "v", max_chars=5).text) == 5
    with pytest.raises(ValueError):
        summarize("x", 1, max_chars=0)


nested = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda children: (
        st.lists(children) | st.dictionaries(st.text(), children) | st.tuples(children, children)
    ),
    max_leaves=60,
)


@settings(max_examples=200, deadline=None)
@given(value=nested, max_chars=st.integers(min_value=1, max_value=2000))
def test_the_text_never_exceeds_max_chars(value: object, max_chars: int) -> None:
    summary = summarize("value", value, max_chars=max_chars)
    assert isinstance(summary, Summary) and len(summary.text) <= max_chars


# -- hostile values ---------------------------------------------------------------------------


class RaisingRepr:
    def __repr__(self) -> str:
        raise RuntimeError("boom")


class NonStrRepr:
    def __repr__(self) -> Any:
        return 42


class HugeRepr:
    def __repr__(self) -> str:
        return "h" * 50_000_000


class EndlessRepr:
    def __repr__(self) -> str:
        return repr(self)


class BadLen(list[int]):
    def __len__(self) -> int:
        raise RuntimeError("no length")


class LyingClass:
    @property  # type: ignore[misc]
    def __class__(self) -> type:  # type: ignore[override]
        raise RuntimeError("no class")

    def __repr__(self) -> str:
        return "LyingClass()"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (LyingClass(), "LyingClass()"),
        (RaisingRepr(), "repr raised RuntimeError"),
        (NonStrRepr(), "repr raised TypeError"),
        (EndlessRepr(), "repr raised RecursionError"),
        ([RaisingRepr()], "repr raised RuntimeError"),
        (BadLen([1]), "len None"),
    ],
    ids=["lying-class", "raises", "non-str", "endless-recursion", "inside-a-list", "bad-len"],
)
def test_a_hostile_repr_is_reported_not_raised(value: object, expected: str) -> None:
    assert expected in summarize("h", value).text


def test_a_huge_repr_is_cut() -> None:
    summary = summarize("h", HugeRepr(), max_chars=300)
    assert len(summary.text) <= 300 and summary.truncated


def test_a_summary_does_not_change_the_object() -> None:
    value = {"a": [1, 2, {"b": (3, 4)}], "api_key": "x"}
    before = repr(value)
    summarize("value", value)
    assert repr(value) == before


def test_a_dict_changed_by_another_thread_while_read_never_raises() -> None:
    shared = {i: i for i in range(1000)}
    stop = threading.Event()

    def churn() -> None:
        i = 1000
        while not stop.is_set():
            shared[i] = i
            shared.pop(i - 1000, None)
            i += 1

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        for _ in range(200):
            assert summarize("shared", shared).text.startswith("shared: dict, len ")
    finally:
        stop.set()
        worker.join()


# -- masking -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "OPENAI_API_KEY",
        "db_password",
        "token",
        "secret",
        "apiKey",
        "refreshToken",
        "aws-secret",
        "passwd",
        "credentials",
        "auth",
        "auth_header",
        "my.apikey",
        "GITHUB_TOKEN2",
        "key",
    ],
)
def test_secret_looking_names(name: str) -> None:
    assert looks_secret(name)


@pytest.mark.parametrize(
    "name",
    ["tokenizer", "max_tokens", "author", "monkey", "keyboard", "df", "passage", "secretary", "tokens"],
)
def test_names_that_only_contain_a_secret_word_are_not_secret(name: str) -> None:
    assert not looks_secret(name)


def test_a_secret_name_hides_the_whole_value() -> None:
    summary = summarize("OPENAI_API_KEY", "plain-text-value")
    assert summary == Summary(name="OPENAI_API_KEY", kind="str", text=NAME_MASK, truncated=False, masked=True)
    assert "plain" not in summarize("db_password", ["plain"]).text


def test_values_under_secret_keys_are_masked_at_any_depth() -> None:
    config = {"user": "ann", "db": {"password": "hunter2", "hosts": [{"apiToken": "t0k"}]}}
    summary = summarize("config", config)
    assert summary.masked
    assert "hunter2" not in summary.text and "t0k" not in summary.text and "'ann'" in summary.text
    assert "'password': <masked>" in summary.text


@pytest.mark.parametrize("secret", SECRETS, ids=["openai", "github", "aws", "slack", "jwt"])
def test_secret_formats_are_masked_wherever_they_appear(secret: str) -> None:
    class Holder:
        def __repr__(self) -> str:
            return f"Holder(value={secret})"

    for value in (f"the key is {secret}.", [f"x {secret}"], {"note": secret}, Holder(), (secret,) * 3):
        summary = summarize("notes", value)
        assert secret not in summary.text and secret[:12] not in summary.text, summary.text
        assert summary.masked and "<masked secret>" in summary.text


def test_a_secret_cut_by_the_cap_does_not_leak_its_start() -> None:
    # Masked secrets are shorter than the secrets: after masking, the place where the read
    # prefix was cut may fall inside the cap, and the secret cut in two there must not show.
    token = JWT + "x" * 200
    text = " ".join([token] * 200)
    for max_chars in range(40, 400, 7):
        summary = summarize("s", text, max_chars=max_chars)
        assert "eyJ" not in summary.text, (max_chars, summary.text)


def test_assignments_to_secret_names_are_masked_in_reprs_and_source() -> None:
    masked, changed = mask_text('conn = connect(password="hunter2", user="ann")\nAPI_KEY = \'abc\'')
    assert changed and "hunter2" not in masked and "abc" not in masked and 'user="ann"' in masked


def _login(user: str) -> None:
    db_password = "hunter2"
    return print(user, db_password)


def test_secret_fields_in_a_dataclass_repr_are_masked() -> None:
    @dataclasses.dataclass
    class Settings:
        user: str
        api_key: str

    summary = summarize("settings", Settings("ann", "abc123"))
    assert "abc123" not in summary.text and "api_key='<masked>'" in summary.text and summary.masked


def test_a_function_s_source_has_its_secrets_masked() -> None:
    summary = summarize("login", _login)
    assert "hunter2" not in summary.text and 'db_password = "<masked>"' in summary.text


@needs_pandas
def test_a_frame_column_with_a_secret_name_is_masked() -> None:
    import pandas as pd

    frame = pd.DataFrame({"user": ["ann"], "api_token": ["t-123"], "note": [f"k={OPENAI_KEY}"]})
    summary = summarize("users", frame)
    assert "t-123" not in summary.text and OPENAI_KEY not in summary.text and "ann" in summary.text
    assert summary.masked
