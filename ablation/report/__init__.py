"""The report: an output folder -> `report.md` and its figures, from the Parquet files and the saved study alone.

`analysis` computes everything once into a frozen `Analysis` (with `factors`: what the study varied, `stats`: paired
effects, `importance`: a search's parameter importances, `paper`: the paper's tables as data); `render` turns it into
Markdown section by section (`render_search`, `render_paper`), drawing `figures` as it goes; `cli` is
`python -m ablation.report`. Nothing here imports torch, Ray or the model library (only its torch-free table of
presets). The modules are imported one by one (this file imports none of them).
"""
