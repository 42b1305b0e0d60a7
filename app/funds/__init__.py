"""Funds context: the ledger wired to projects and bookings, and its API for leads and units."""
