"""logship ingest: the HTTP sink from log shippers to a partitioned gzip JSON lake."""

__version__ = "0.1.0"
