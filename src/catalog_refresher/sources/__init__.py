"""Where records come from: the ``Source`` protocol and its implementations."""
