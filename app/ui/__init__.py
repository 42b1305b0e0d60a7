"""The web dashboard at ``/ui/``: controllers rendering Jinja2 templates over the services."""
