"""Small shared helpers (atomic files, hashing, environment facts)."""
