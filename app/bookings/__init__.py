"""Bookings context: requests, bookings, availability, approvals, recurring series."""
