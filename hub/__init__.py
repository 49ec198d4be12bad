"""Publishing pipeline for adain checkpoints (run from a checkout: ``python -m hub``)."""
