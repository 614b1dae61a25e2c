"""The study: a YAML file -> a validated `Study` (`load`) -> its variants and trials (`design`).

`schema` holds the `Study` as plain data, its saved form and the trial-key format; it imports neither torch nor the
model library, so the report can read it. The modules are imported one by one (this file imports none of them).
"""
