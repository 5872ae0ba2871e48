"""The search engine: the Optuna study and its storage, the objective, baseline seeding, dead-trial
recovery, the leaderboard, and the session that ``nas_mnist.search`` runs (plus the KerasTuner
engine on the same search space)."""
