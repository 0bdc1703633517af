"""Taking one message off the order socket without holding more of it than a frame.

The protocol's messages are one frame. libzmq bounds a frame (`[limits] max_message_bytes`, its
ZMQ_MAXMSGSIZE) but not how many frames a message has, and it delivers a multipart message only
once its last frame has arrived. So the node reads the first frame, and if more follow, takes
them one at a time and lets each go before the next: a message of many frames never costs the
node more than the frame in hand on top of what libzmq queued, and is answered `malformed`.
"""

from __future__ import annotations

from collections.abc import Callable

import zmq


def read_message(recv: Callable[..., zmq.Frame]) -> tuple[zmq.Frame, int]:
    """The first frame of the message whose routing identity was just read, and how many
    frames the message had (more than one: the rest were read and dropped)."""
    first = recv(0, copy=False)
    frames = 1
    more = first.more
    while more:
        more = recv(0, copy=False).more
        frames += 1
    return first, frames
