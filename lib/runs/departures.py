"""How a profile departs from the classic recipe (`full`), computed from the two
configurations so the book's lists of departures cannot drift from the profiles."""

from __future__ import annotations

from lib.runs.profiles import PROFILES, Profile

# Why a profile may depart from the classic recipe (`full`), field by field. Fields that
# cannot move a result (names, checkpoint spacing, snapshot count) are not departures.
DEPARTURE_REASONS = {
    "epochs": "fewer epochs, to fit the hours a 2-core CPU has",
    "final_epochs": ("the cosine ends elsewhere; the classic code ends it after 200 passes over "
                     "the pretraining corpus, in finetuning too"),
    "clamp_schedule": "the rate then stays at its floor instead of rising again",
    "length_grouped": "batches of similar-length examples, cut to their longest: less padding",
    "shuffle": "a fresh order every epoch; the classic code reads the corpus in file order",
    "decay_all_but_biases": ("weight decay on matrices only; the classic code also decays the "
                             "LayerNorm gains, since its filter spares only names with \"bias\""),
    "scaled_residual_init": ("GPT-2's scaled initialisation of the residual projections; the "
                             "classic code draws them with std 0.02 like every other matrix"),
    "epoch_token_mean": ("in those batches every character still weighs the same in the loss, "
                         "as in mixed batches"),
    "cpu_bf16": "bf16 autocast: faster steps on a CPU with bf16 instructions, see the performance appendix",
    "gpu_bf16": "bf16 autocast on a GPU, see the performance appendix",
    "attn_dropout": "no dropout on the attention weights, so the fused attention kernel runs",
    "dropout": "less dropout for a smaller model",
    "n_embd": "a smaller model", "n_layer": "a smaller model", "n_head": "a smaller model",
    "batch_size": "smaller batches: more steps for a small world",
    "learning_rate": "another learning rate", "warmup_tokens": "another warmup",
    "mini_world": "a seeded sample of people instead of the whole data",
    "seeds": "other seeds",
    "recipe": "a pretraining recipe beyond the classic exercise, see lib.core.datasets.RECIPES",
}
NOT_RESULTS = {"name", "description", "checkpoint_every", "snapshots", "extra"}
PHASES = {"pretrain": "pretraining", "finetune_scratch": "finetuning from scratch",
          "finetune_pretrained": "finetuning after pretraining"}


def _shown(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# The settings of the starter code's training loop that no hyperparameter of the handout names.
TRAINING_CODE_SETTINGS = ("shuffle", "decay_all_but_biases", "scaled_residual_init")


def departed_settings(profile: Profile, reference: str = "full") -> list[str]:
    """The names of the settings in which `profile` departs from `reference`, in the order of
    `recipe_departures`, each once."""
    return list(dict.fromkeys(name for name, _, _ in _changes(profile, reference)))


def training_code_departures(profile: Profile, reference: str = "full") -> list[str]:
    """The settings of the starter code's training loop (`TRAINING_CODE_SETTINGS`) in which
    `profile` departs from `reference`: empty when it trains the way the starter code does."""
    departed = set(departed_settings(profile, reference))
    return [name for name in TRAINING_CODE_SETTINGS if name in departed]


def recipe_departures(profile: Profile, reference: str = "full", markdown: bool = False,
                      reasons: bool = True) -> list[str]:
    """How `profile` departs from the classic recipe, one line per changed setting (with the
    phases it applies to and, with `reasons`, why), computed from the two configurations so
    it cannot drift. Plain text (`name old -> new ...`), or with `markdown` the setting in
    code font as `Profile` and `TrainConfig` name it (`` `name`: old → new ...``)."""
    out = []
    for (name, old, new), phases in _changes(profile, reference).items():
        where = "" if not phases else (" in every phase" if len(phases) == len(PHASES)
                                       else " in " + " and ".join(phases))
        line = f"`{name}`: {old} → {new}" if markdown else f"{name} {old} -> {new}"
        why = f" ({DEPARTURE_REASONS.get(name, 'changed')})" if reasons else ""
        out.append(line + where + why)
    return out


def _changes(profile: Profile, reference: str) -> dict[tuple[str, str, str], list[str]]:
    """(setting, reference value, profile value) -> the phases where it differs (none for a
    setting of the model or the world)."""
    ref, here = PROFILES[reference].to_dict(), profile.to_dict()
    changes: dict[tuple[str, str, str], list[str]] = {}
    for key, value in here.items():
        if key in NOT_RESULTS or value == ref[key]:
            continue
        if key in PHASES:
            for name, v in value.items():
                if name not in NOT_RESULTS and v != ref[key][name]:
                    changes.setdefault((name, _shown(ref[key][name]), _shown(v)), []).append(PHASES[key])
        else:
            changes.setdefault((key, _shown(ref[key]), _shown(value)), [])
    return changes
