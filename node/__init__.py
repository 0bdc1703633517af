"""The marketnode core: markets, the matching engine and its LMDB store."""

__version__ = "0.1.0"
