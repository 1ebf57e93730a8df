"""Tooling that stays at home: what assembles and uploads the Hugging Face Space (never shipped to the Space)."""
