"""Where the catalog lives: the ``Store`` protocol and its implementations."""
