"""feeds context: private iCalendar subscriptions, and busy time imported from .ics files."""
