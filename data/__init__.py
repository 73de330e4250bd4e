"""Data helpers: the FineWeb shard format of the benchmark and its downloader."""
