"""agreements context."""
