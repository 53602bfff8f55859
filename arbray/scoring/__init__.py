"""Strategy scoring: the ScoreResult record, the kind registry and shared helpers."""
