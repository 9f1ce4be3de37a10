"""Pure encoding at the boundaries: both wire dialects as tables, strict JSON, close and error codes,
and model text made safe to show in a cell.  Imports only ``core`` and ``errors``.
"""
