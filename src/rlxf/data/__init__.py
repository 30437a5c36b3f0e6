"""Real preference datasets in and out: `rlxf data import FORMAT SRC --out DST` converts a public
dataset file to canonical feedback records (`formats` holds one converter per format, `io` reads
files with `datasets` and writes atomically, `importer` validates and numbers the records), and
`rlxf data export SRC --format trl --out DST` writes pairwise records as TRL preference data."""
