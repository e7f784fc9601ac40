"""The pieces of ``python -m ember.train``: dataset choice, the loop, checkpoints and plots."""
