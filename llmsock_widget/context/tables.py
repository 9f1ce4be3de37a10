"""Data frames, series and arrays (pandas, polars, numpy), read through their own methods.

None of those libraries is imported here: a value is recognised by the module and name of a
class in its type's MRO, so a summary costs nothing when they are not installed.  Reading uses
``.shape``, ``.dtypes``/``.schema``, ``.iloc``/``.head`` and ``.flat``: a few rows and values,
never a copy of the whole object.
"""

from __future__ import annotations

from typing import Any

from .secrets import VALUE_MASK, looks_secret
from .text import Reading, inline, safe_str

ROWS = 5  # rows of a table shown
COLUMNS = 12  # columns of a table shown
CELL_CHARS = 40  # characters of one cell
DTYPES = 30  # dtypes listed
VALUES = 10  # values of an array or series shown

FAMILIES = {
    ("pandas", "DataFrame"): "DataFrame",
    ("pandas", "Series"): "Series",
    ("polars", "DataFrame"): "DataFrame",
    ("polars", "Series"): "Series",
    ("numpy", "ndarray"): "ndarray",
}


def family(value: object) -> tuple[str, str] | None:
    """Return ``(library, class)`` for a pandas/polars frame or series or a numpy array, else None."""
    for cls in type(value).__mro__:
        module = getattr(cls, "__module__", None)
        if isinstance(module, str) and (module.split(".")[0], cls.__name__) in FAMILIES:
            return module.split(".")[0], cls.__name__
    return None


def describe(library: str, name: str, value: Any, reading: Reading) -> str:
    """Return the body of the summary of a frame, series or array (the caller adds the name line)."""
    if name == "ndarray":
        return _array(value, reading)
    if name == "DataFrame":
        return _pandas_frame(value, reading) if library == "pandas" else _polars_frame(value, reading)
    return _pandas_series(value, reading) if library == "pandas" else _polars_series(value, reading)


def _cell(value: object, reading: Reading) -> str:
    return safe_str(value, CELL_CHARS, reading).replace("\n", " ").replace("|", "\\|")


def _table(columns: list[str], rows: list[tuple[Any, ...]], reading: Reading) -> str:
    secret = [looks_secret(column) for column in columns]
    if any(secret) and rows:
        reading.masked = True
    lines = ["| " + " | ".join(_cell(c, reading) for c in columns) + " |"]
    lines.append("|" + " --- |" * len(columns))
    for row in rows:
        cells = [
            VALUE_MASK if hide else _cell(cell, reading) for cell, hide in zip(row, secret, strict=False)
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _shape_line(library: str, shape: tuple[int, ...]) -> str:
    rows, columns = shape
    return f"{library}.DataFrame, {rows:,} rows x {columns:,} columns"


def _dtypes(pairs: list[tuple[str, object]], total: int, reading: Reading) -> str:
    listed = ", ".join(f"{_cell(name, reading)} {_cell(dtype, reading)}" for name, dtype in pairs)
    more = f", ... {total - len(pairs):,} more" if total > len(pairs) else ""
    return f"dtypes: {listed}{more}"


def _rows_line(shown_rows: int, rows: int, shown_columns: int, columns: int, reading: Reading) -> str:
    if shown_rows < rows or shown_columns < columns:
        reading.truncated = True
    return f"first {shown_rows} rows, {shown_columns} of {columns} columns:"


def _pandas_frame(frame: Any, reading: Reading) -> str:
    rows, columns = (int(n) for n in frame.shape)
    dtypes = [(str(name), dtype) for name, dtype in list(frame.dtypes.items())[:DTYPES]]
    sample = frame.iloc[:ROWS, :COLUMNS]
    names = ["(index)", *(str(c) for c in sample.columns)]
    table = _table(names, list(sample.itertuples(index=True, name=None)), reading)
    return "\n".join(
        [
            _shape_line("pandas", (rows, columns)),
            _dtypes(dtypes, columns, reading),
            _rows_line(len(sample), rows, len(names) - 1, columns, reading),
            table,
        ]
    )


def _polars_frame(frame: Any, reading: Reading) -> str:
    rows, columns = (int(n) for n in frame.shape)
    schema = list(frame.schema.items())
    names = [str(c) for c in frame.columns[:COLUMNS]]
    sample = frame.head(ROWS).select(names)
    table = _table(names, list(sample.rows()), reading)
    return "\n".join(
        [
            _shape_line("polars", (rows, columns)),
            _dtypes([(str(n), d) for n, d in schema[:DTYPES]], columns, reading),
            _rows_line(sample.height, rows, len(names), columns, reading),
            table,
        ]
    )


def _series_lines(header: str, name: object, pairs: list[tuple[Any, Any]], reading: Reading) -> str:
    hide = looks_secret(str(name))
    if hide and pairs:
        reading.masked = True
    lines = [header] + [f"{_cell(k, reading)}: {VALUE_MASK if hide else _cell(v, reading)}" for k, v in pairs]
    return "\n".join(lines)


def _pandas_series(series: Any, reading: Reading) -> str:
    length = len(series)
    sample = series.iloc[:VALUES]
    if length > len(sample):
        reading.truncated = True
    name = safe_str(series.name, CELL_CHARS, reading)
    header = f"pandas.Series {name!r}, length {length:,}, dtype {series.dtype}"
    return _series_lines(header, series.name, list(sample.items()), reading)


def _polars_series(series: Any, reading: Reading) -> str:
    length = len(series)
    values = series.head(VALUES).to_list()
    if length > len(values):
        reading.truncated = True
    header = f"polars.Series {series.name!r}, length {length:,}, dtype {series.dtype}"
    return _series_lines(header, series.name, list(enumerate(values)), reading)


def _array(array: Any, reading: Reading) -> str:
    shape = tuple(int(n) for n in array.shape)
    size = int(array.size)
    values = array.flat[:VALUES].tolist()
    if size > len(values):
        reading.truncated = True
    shown = inline(values, reading)
    return f"numpy.ndarray, shape {shape}, dtype {array.dtype}, {size:,} values\nfirst values (flat): {shown}"
