"""Errors a user can fix: the message names the file or setting and the fix."""


class UserError(ValueError):
  """A bad setting, path or input file; printed without a traceback by the CLI."""
