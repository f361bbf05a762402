"""Placeholder: filled in by the data work."""
