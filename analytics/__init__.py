"""Farming investigation (read-only over the store): its own issue."""
