"""Why a node cannot start, worded for the operator."""


class NodeError(RuntimeError):
    """The node cannot start; one line for the operator."""
