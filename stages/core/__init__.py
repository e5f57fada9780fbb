"""Foundations every stage shares: errors, file contracts, paths, settings, progress, row identity."""
