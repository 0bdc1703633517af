"""The matching core: markets, commands, validation, books, matching and events.

Deterministic and pure: integer ticks and lots, no floats, no clocks, no I/O, no locks. The same
commands in give the same events and the same books out, which is what replay and the state
hash rest on. May import: the standard library and msgspec only, nothing else of marketnode.
"""
