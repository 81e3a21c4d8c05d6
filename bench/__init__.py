"""Benchmarks of rice_fast, side by side with aioice (run with pytest bench)."""
