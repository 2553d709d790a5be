"""`python -m export`: the command line of `keras_caps.export` (see `export/__main__.py`)."""
