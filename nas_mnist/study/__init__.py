"""A study on a storage: opening and loading it, its sampler and pruner, what it remembers,
recovery of dead trials, the leaderboard and best-trial rule, and its plots. Search, export and
report share it; it runs no training."""
