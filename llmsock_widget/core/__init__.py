"""The pure core: events and commands, the session reducer with its transition table, snapshots.

Nothing here does I/O, reads a clock or draws an id: time and ids come in as arguments.
It imports only ``errors``.
"""
