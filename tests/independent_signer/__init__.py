"""An EIP-712 signer written from docs/signing.md alone, and its tests against the verifier."""
