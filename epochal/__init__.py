"""epochal: the app package (command line, settings, store, ingest edge)."""

__version__ = "0.1.0"
ENGINE_VERSION = __version__
