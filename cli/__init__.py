"""The ``trajstore`` command line: parse, call the library, print, exit."""
