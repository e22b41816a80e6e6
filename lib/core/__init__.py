"""The machine: data, model, attention variants, training, evaluation and checkpoints.

Nothing here knows about profiles, records or pages; the layers above call into it.
"""
