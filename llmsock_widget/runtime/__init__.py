"""One asyncio loop's worth of sessions: live sessions, turns, fan-out and the hub that joins them.

No Tornado and no IPython here; the server thread runs this on its loop.
"""
