"""`python -m marketnode.cli`: the same as the `mnode` command."""

from .main import app

app(prog_name="mnode")
