"""Running a study: `cli` (`python -m ablation.run`) checks the study and its data, then a runner trains the trials
and hands each outcome to the ledger: `driver` on Ray Tune with an Optuna searcher, or `serial` in this process. Both
take the same arguments and give the same rows. `trainable` adapts one Tune trial to `ssagan_core.train`;
`context` is what every row of a run shares; `progress` is what a running study shows.
"""
