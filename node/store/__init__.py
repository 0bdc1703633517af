"""Durability: the LMDB store of journal and books, group commit, the state hash and verify.

A batch of commands is applied by `durable` and committed in one synced LMDB transaction before
anything is answered; `verify` replays the journal into a fresh engine and compares hashes.
May import: `core`.
"""
