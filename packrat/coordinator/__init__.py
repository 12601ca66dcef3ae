"""The coordinator: one process that owns the index and performs evictions."""
