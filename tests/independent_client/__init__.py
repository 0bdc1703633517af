"""An outside client of the node's order socket, written from docs/protocol.md alone.

`wire.py` is the client (pyzmq with CURVE, msgspec's MessagePack) and a driver that runs a
node the way the README's tour does (the `mnode` command in a subprocess); the `test_*.py`
files check, sentence by sentence, what docs/protocol.md promises.
"""
