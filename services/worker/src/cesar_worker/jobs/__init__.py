"""The built-in job functions, registered as ``cesar.jobs`` entry points (see pyproject)."""
