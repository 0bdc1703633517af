"""A signer of marketnode orders written from docs/signing.md alone (pycryptodome's keccak,
coincurve's secp256k1, nothing of marketnode), and the checks that the node's signature
library accepts what it signs and refuses what the page says it refuses."""
