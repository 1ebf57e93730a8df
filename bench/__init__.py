"""Benchmarks for ViT Studio's engine: `python -m bench <name>`, one module per benchmark."""
