"""`lib`: the package every chapter and experiment of the book runs on.

Modules, one job each:
- `data`: reading and validating the birthplace files, vocabulary, datasets;
- `attention`: the registry of causal self-attention variants;
- `model`: the character-level GPT;
- `train`: pretraining and finetuning with checkpoints and a metrics log;
- `evaluate`: batched greedy decoding, accuracy, the London baseline, knowledge probes;
- `profiles`: the named experiment profiles (smoke, cpu, full) as data;
- `records`: result records with provenance;
- `single_query`: the single-query attention helper of the derivation chapters.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
