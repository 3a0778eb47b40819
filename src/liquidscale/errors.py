"""User-facing errors: the CLI prints these as one line (no traceback) and exits with status 2."""


class UserError(Exception):
    """A problem the user can fix: bad config key, missing or corrupt input file, impossible request."""
