"""audit context."""
