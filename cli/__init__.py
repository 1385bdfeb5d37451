"""The ``usvid`` command line (installed as ``usvid.cli``). It parses, calls the library and prints."""
