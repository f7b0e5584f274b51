"""Statistics and bounds: mergeable per-model statistics and StageRoute's confidence bounds."""
