"""What the tests share: harness (the bot on loopback against the LINE stand-in, and talking to it),
fixtures (Redis, the stand-in, `bot` and `bot_with`; loaded by tests/conftest.py), rules_helpers (rules
variants, a movable clock), processes (real worker processes), cluster (the test Redis Cluster) and
slot_guard (every Lua call checked for cluster-readiness)."""
