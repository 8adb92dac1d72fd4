"""One reader per input format: LightGCN text, CSV/TSV/Parquet tables, MovieLens-100k, sequence
files, attribute tables, and the bundled Gowalla."""
