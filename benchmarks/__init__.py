"""Benchmarks of the llmsock server: scripts that print figures, not tests.

Run ``python -m benchmarks [SUITE] [options]`` (``--help`` lists them); docs/benchmarks.md
says what each suite measures and gives the figures of this version.

* ``throughput`` (:mod:`.throughput`): deltas/s over loopback, the full stack against bare Tornado.
* ``reducer`` (:mod:`.reducer`): CPU per delta in the session state, by answer length.
* ``latency`` (:mod:`.latency`): model-to-client delta latency at 1, 100 and 1,000 streaming
  sessions, and beside a busy kernel thread.
* ``connections`` (:mod:`.connections`): server memory per idle WebSocket, and how many it holds.
* ``snapshot`` (:mod:`.snapshots`): save, load and fit a 1,000-turn session's snapshot.
* ``comm`` (:mod:`.comm`): the comm fallback's messages against Jupyter's IOPub rate limit.
* ``redis`` (:mod:`.redis`, named only): the Redis store's saves, loads, conflicts and memory, on a
  real ``redis-server`` started as the tests start theirs (:mod:`.redisprocess`).
"""
