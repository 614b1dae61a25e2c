"""ablation: the study harness around `ssagan_core`, in four rooms that follow the flow of a study.

`study` (a YAML file -> a validated `Study` -> its trials), `run` (the trials on Ray Tune or serially), `results` (the
rows and the output folder), `report` (the output folder -> report.md). Each room imports only the rooms before it.
"""
