"""Measurements, not tests: make bench (speed, with its tiny search in search_overhead and its
printed table in table), make bench-distributed (distributed), make profile-ops (profile_ops)."""
