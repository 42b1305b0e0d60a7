"""projects context."""
