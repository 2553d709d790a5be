class ExportError(RuntimeError):
    """An export that cannot be done; the message says why."""
