"""Reusable real-process test harness: backends, the proxy as a process, real clients.

See ``tests/support/README.md`` for the fixtures built on top of these helpers.
"""
