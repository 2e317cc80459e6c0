"""The ``warden`` command line: ``main`` builds the app from one module per command group."""
