"""The one exception type of :mod:`ember.data`.

Kept in its own module so that the IDX reader, the file locator and the
datasets can all raise it without importing one another.
"""


class DatasetError(ValueError):
    """A dataset file is missing, truncated, corrupt or not what it claims to be.

    Subclasses :class:`ValueError` because the usual cause is bad input data,
    not a bug in the caller. The message names the file (or every place that was
    searched) and states what was expected and what was found.
    """
