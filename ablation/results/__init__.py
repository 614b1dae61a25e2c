"""The results of a study: `rows` turns a finished trial into its rows (the schema), `ledger` keeps the output folder
(the Parquet files, written atomically, and the study that made them) and reads it back. Neither imports torch, Ray
or the model library. The modules are imported one by one (this file imports none of them).
"""
