"""Batch classification of many datagrams in one call (placeholder)."""
