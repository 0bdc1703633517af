"""The `mnode` command line: one module per command group."""
