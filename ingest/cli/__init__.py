"""The `logship` command line: the one place that imports both the sink (`ingest`) and the
loader (`loader`), so that neither package depends on the other's runtime.

:mod:`ingest.cli.parser` holds the argument tree and names each command's module; one module
per command implements it; :mod:`ingest.cli.main` imports that module only when its command
runs (so the sink never loads the loader) and maps errors to exit codes.
"""
