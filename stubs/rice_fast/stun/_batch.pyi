"""Batch classification (placeholder)."""
