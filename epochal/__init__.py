"""epochal: the app package (command line, settings, ingest edge, simulator, report)."""

from payouts import ENGINE_VERSION

__version__ = ENGINE_VERSION
