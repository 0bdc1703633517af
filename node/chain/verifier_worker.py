"""One signature-verifier process of a `VerifierPool` (verifier.py), which starts it as

    python -m marketnode.node.chain.verifier_worker ENDPOINT ROUTING_ID PARENT_PID

It connects a DEALER socket to the pool's ROUTER at ENDPOINT under ROUTING_ID, says it is
ready, then answers each batch with its verdicts, one batch at a time. It keeps no state
(so killing it loses nothing the pool cannot send again) and it exits on SIGTERM (the pool's
`close`), on a message it does not know, or within a second of its parent's death (its parent
pid changes).

Messages (multipart): worker -> pool `[READY]` once, then `[VERDICTS, pickle((batch_id,
verdicts))]`; pool -> worker `[BATCH, pickle((batch_id, domain, now, items))]`.
pickle, because the batches hold uint256 integers (msgpack stops at 64 bits) and tuples it
rebuilds in C; only the node's own processes reach the socket, in a folder only the node's
user can open.
"""

from __future__ import annotations

import os
import pickle
import sys

import zmq

from .signatures import check_signed

READY = b"ready"
BATCH = b"batch"
VERDICTS = b"verdicts"
PARENT_CHECK_MS = 1000
"""How often an idle worker looks whether its parent is still alive."""


def serve(endpoint: str, routing_id: bytes, parent_pid: int) -> None:
    """Answer batches on `endpoint` until told to stop or the parent is gone."""
    context = zmq.Context(io_threads=1)
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.ROUTING_ID, routing_id)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(endpoint)
    socket.send_multipart([READY])
    try:
        while os.getppid() == parent_pid:
            if not socket.poll(PARENT_CHECK_MS):
                continue
            frames = socket.recv_multipart()
            if frames[0] != BATCH:
                break
            batch_id, domain, now, items = pickle.loads(frames[1])
            verdicts = [check_signed(domain, item, now) for item in items]
            socket.send_multipart([VERDICTS, pickle.dumps((batch_id, verdicts), protocol=5)])
    finally:
        socket.close()
        context.term()


def main(argv: list[str]) -> None:
    endpoint, routing_id, parent_pid = argv
    serve(endpoint, routing_id.encode(), int(parent_pid))


if __name__ == "__main__":
    main(sys.argv[1:])
