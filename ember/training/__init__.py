"""The pieces of ``python -m ember.train``: flags (options), data choice (datasets), the loop, the run (run), checkpoints, run folders and plots."""
