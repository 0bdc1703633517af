"""The operator dashboard (Textual)."""
