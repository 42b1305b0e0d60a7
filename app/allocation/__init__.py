"""Allocation runs: snapshot → scheduling.solve in a process pool → plan → apply as bookings."""
