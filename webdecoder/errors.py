"""The one exception type every bad input ends in."""


class NicError(ValueError):
    """A .nic file (or model file) is malformed, truncated, corrupt or unsupported.

    The message says what is wrong in one line; decoding never hangs, crashes or
    allocates beyond the limits of docs/FORMAT.md before raising it.
    """
