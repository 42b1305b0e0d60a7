"""units context."""
