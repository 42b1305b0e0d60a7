"""copool's web service: HTTP API, auth, persistence, background runs, CLI and migrations."""
