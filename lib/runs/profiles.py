"""Named experiment profiles: one table of data, not copies of code.

- `smoke`: seconds on a CPU; proves the wiring, not accuracy.
- `mini`: a seeded *mini world* (a few hundred people's biographies and questions, same
  vocabulary) and a smaller model, sized for a 2-core CPU (each record holds its wall
  time). Every `mini` number says it comes from the mini world.
- `cpu`: the whole data and the classic model size on a 2-core CPU under bf16, on a
  stretched, clamped schedule (`lib.runs.departures` lists every departure).
- `cpu32`: the classic hyperparameters in float32 on a 2-core CPU; it departs from the classic code in
  length-grouped batches (each character still weighing the same), no attention dropout,
  and the library's own defaults (`lib.runs.departures` lists them all).
- `cpu32-classic`: `full` on a 2-core CPU: the classic hyperparameters and training code,
  without attention dropout.
- `full`: the classic exercise's hyperparameters and training code on the whole data, meant
  for a GPU.
- `mini-CODE` (`mini-classic`, ...): the mini world trained by other training code
  (`with_training_code`), arms of `mini` in the recipes comparison.

Other profiles can be added by name (`register_profile`, or a JSON list of profiles in
`$BOOK_EXTRA_PROFILES`); the reliability tests do so. The built-in ones cannot be replaced.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from lib.core import data as D
from lib.core.train.config import TrainConfig


@dataclass(frozen=True)
class Profile:
    """A named setting every run is made under: the model size, the three training
    configurations, the world (whole data or a mini world), the seeds and any recipe options."""

    name: str
    description: str
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float
    attn_dropout: float
    pretrain: TrainConfig
    finetune_scratch: TrainConfig
    finetune_pretrained: TrainConfig
    block_size: int = 128
    # None: the whole data; else (train people, dev people, sampling seed).
    mini_world: tuple[int, int, int] | None = None
    seeds: tuple[int, ...] = (0, 1, 2)
    text_mode: str = "unicode"
    # Pretraining recipe options beyond the classic exercise (`lib.core.datasets.RECIPES`); none in
    # the built-in profiles. `get_profile("mini+mixed")` is `mini` with the `mixed` option.
    recipe: tuple[str, ...] = ()
    # GPT-2's scaled initialisation of the residual projections (`GPTConfig`); the classic
    # code does without it.
    scaled_residual_init: bool = True
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("n_layer", "n_head", "n_embd", "block_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"profile {self.name!r}: {name} must be a positive integer, "
                                 f"got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"profile {self.name!r}: n_embd={self.n_embd} is not divisible by "
                             f"n_head={self.n_head}")
        if self.mini_world is not None:
            n_train, n_dev, seed = self.mini_world
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in self.mini_world) \
                    or n_train <= 0 or n_dev <= 0 or seed < 0:
                raise ValueError(f"profile {self.name!r}: mini_world must be (train people > 0, "
                                 f"dev people > 0, seed >= 0), got {self.mini_world!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    def with_changes(self, **changes) -> Profile:
        return replace(self, **changes)


CLASSIC_PRETRAIN = TrainConfig(epochs=650, batch_size=128, learning_rate=6e-3, snapshots=4)
CLASSIC_FINETUNE_SCRATCH = TrainConfig(epochs=75, batch_size=256, learning_rate=6e-4)
CLASSIC_FINETUNE_PRETRAINED = TrainConfig(epochs=10, batch_size=256, learning_rate=6e-4)
# The classic training code, beyond its hyperparameters: batches in corpus order, weight decay
# on everything but biases, and a finetuning cosine as long as pretraining's, since its run
# script sets final_tokens = 200 * len(pretraining corpus) * block in every phase: 200 passes
# over the 2,937 biographies are 293.7 passes over the 2,000 training questions.
CLASSIC_CODE = {"shuffle": False, "decay_all_but_biases": True}
CLASSIC_FINETUNE_FINAL_EPOCHS = 200 * D.REFERENCE_LINES["wiki.txt"] / D.REFERENCE_LINES[
    "birth_places_train.tsv"]

def with_training_code(base: Profile, code: str, description: str, *,
                       scaled_residual_init: bool | None = None, **changes) -> Profile:
    """`base` trained by other training code (`BASE-CODE`): the same model, world and
    hyperparameters, with `changes` to every phase's training configuration."""
    phases = {phase: replace(getattr(base, phase), **changes)
              for phase in ("pretrain", "finetune_scratch", "finetune_pretrained")}
    init = base.scaled_residual_init if scaled_residual_init is None else scaled_residual_init
    return replace(base, name=f"{base.name}-{code}", description=description,
                   scaled_residual_init=init, **phases)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="seconds on a CPU: a tiny model in a tiny mini world; wiring, not accuracy",
        n_layer=2, n_head=2, n_embd=32, dropout=0.0, attn_dropout=0.0,
        pretrain=TrainConfig(epochs=3, batch_size=16, learning_rate=3e-3, clamp_schedule=True,
                             final_epochs=3, warmup_tokens=0, length_grouped=True, snapshots=2),
        finetune_scratch=TrainConfig(epochs=2, batch_size=16, learning_rate=3e-3,
                                     clamp_schedule=True, final_epochs=2, warmup_tokens=0),
        finetune_pretrained=TrainConfig(epochs=2, batch_size=16, learning_rate=3e-3,
                                        clamp_schedule=True, final_epochs=2, warmup_tokens=0),
        mini_world=(40, 20, 0),
        seeds=(0,),
    ),
    "mini": Profile(
        name="mini",
        description=("mini world of 400 train and 100 dev people (seed 0) with a 128-dim "
                     "model, sized for a 2-core CPU (each run's wall time is in its record)"),
        n_layer=4, n_head=8, n_embd=128, dropout=0.1, attn_dropout=0.0,
        pretrain=TrainConfig(epochs=600, batch_size=64, learning_rate=6e-3, clamp_schedule=True,
                             final_epochs=600, warmup_tokens=512 * 20, length_grouped=True,
                             checkpoint_every=25, snapshots=4),
        finetune_scratch=TrainConfig(epochs=75, batch_size=64, learning_rate=6e-4,
                                     clamp_schedule=True, final_epochs=75, length_grouped=True,
                                     checkpoint_every=25),
        finetune_pretrained=TrainConfig(epochs=10, batch_size=64, learning_rate=6e-4,
                                        clamp_schedule=True, final_epochs=10,
                                        length_grouped=True, checkpoint_every=5),
        mini_world=(400, 100, 0),
    ),
    "cpu": Profile(
        name="cpu",
        description=("the whole data with the classic model size (4 layers, 8 heads, 256 dims, "
                     "block 128) on a 2-core CPU: 400 pretraining epochs, bf16, "
                     "length-grouped batches, no attention dropout"),
        n_layer=4, n_head=8, n_embd=256, dropout=0.1, attn_dropout=0.0,
        pretrain=replace(CLASSIC_PRETRAIN, epochs=400, final_epochs=400, clamp_schedule=True,
                         length_grouped=True, cpu_bf16=True, checkpoint_every=5),
        finetune_scratch=replace(CLASSIC_FINETUNE_SCRATCH, length_grouped=True, cpu_bf16=True,
                                 checkpoint_every=5),
        finetune_pretrained=replace(CLASSIC_FINETUNE_PRETRAINED, length_grouped=True,
                                    cpu_bf16=True, checkpoint_every=5),
    ),
    "cpu32": Profile(
        name="cpu32",
        description=("the classic hyperparameters in float32 on a 2-core CPU, trained by lib's "
                     "own training code: the whole data, the classic model size and schedule "
                     "(650 pretraining epochs, the cosine ending at epoch 200 and the rate "
                     "rising again after it), length-grouped batches in which every character "
                     "still weighs the same, and no attention dropout"),
        n_layer=4, n_head=8, n_embd=256, dropout=0.1, attn_dropout=0.0,
        pretrain=replace(CLASSIC_PRETRAIN, length_grouped=True, epoch_token_mean=True,
                         checkpoint_every=5),
        finetune_scratch=replace(CLASSIC_FINETUNE_SCRATCH, length_grouped=True,
                                 epoch_token_mean=True, checkpoint_every=5),
        finetune_pretrained=replace(CLASSIC_FINETUNE_PRETRAINED, length_grouped=True,
                                    epoch_token_mean=True, checkpoint_every=5),
    ),
    "full": Profile(
        name="full",
        description=("the classic exercise: 4 layers, 8 heads, 256 dims, block 128, whole data, "
                     "trained as the classic code trains"),
        n_layer=4, n_head=8, n_embd=256, dropout=0.1, attn_dropout=0.1,
        pretrain=replace(CLASSIC_PRETRAIN, checkpoint_every=50, **CLASSIC_CODE),
        finetune_scratch=replace(CLASSIC_FINETUNE_SCRATCH, **CLASSIC_CODE,
                                 final_epochs=CLASSIC_FINETUNE_FINAL_EPOCHS),
        finetune_pretrained=replace(CLASSIC_FINETUNE_PRETRAINED, **CLASSIC_CODE,
                                    final_epochs=CLASSIC_FINETUNE_FINAL_EPOCHS),
        scaled_residual_init=False,
    ),
}


# The mini world trained by other training code: the starter code's choices all together,
# its weight-decay set and initialisation alone (the part a whole-data CPU run can afford,
# with batches still length-grouped), and lib's code with batches of mixed lengths only.
_MINI_CODE = [
    with_training_code(
        PROFILES["mini"], "classic",
        "the mini profile trained as the classic code trains: batches in corpus order (so not "
        "length-grouped), weight decay on the LayerNorm gains too, and every matrix "
        "initialised with std 0.02",
        scaled_residual_init=False, length_grouped=False, **CLASSIC_CODE),
    with_training_code(
        PROFILES["mini"], "classic-grouped",
        "the mini profile with the classic code's weight decay (LayerNorm gains too) and "
        "initialisation (every matrix with std 0.02), its batches still length-grouped and "
        "reshuffled every epoch",
        scaled_residual_init=False, decay_all_but_biases=True),
    with_training_code(
        PROFILES["mini"], "ungrouped",
        "the mini profile with batches of mixed lengths, in a fresh order every epoch (not "
        "grouped by length)",
        length_grouped=False),
]
# The whole data trained as the classic code trains, in float32 on a CPU: `full` but for the
# attention dropout, which would keep the fused attention kernel from running, with a
# checkpoint every 5 epochs so a run can stop and resume.
_CPU32_CLASSIC = replace(
    PROFILES["full"], name="cpu32-classic",
    description=("the cpu32 profile trained as the classic code trains: batches in corpus "
                 "order (so not length-grouped), weight decay on the LayerNorm gains too, "
                 "every matrix initialised with std 0.02 and a finetuning cosine as long as "
                 "pretraining's; no attention dropout"),
    attn_dropout=0.0,
    **{phase: replace(getattr(PROFILES["full"], phase), checkpoint_every=5)
       for phase in ("pretrain", "finetune_scratch", "finetune_pretrained")})


def _insert_after(anchor: str, profiles: list[Profile]) -> None:
    """List `profiles` right after `anchor` in `PROFILES` (the order pages list them in)."""
    names = list(PROFILES)
    later = names[names.index(anchor) + 1:]
    PROFILES.update({p.name: p for p in profiles})
    PROFILES.update({name: PROFILES.pop(name) for name in later})


_insert_after("mini", _MINI_CODE)  # after the profile they change
_insert_after("cpu32", [_CPU32_CLASSIC])

BUILTIN = ("smoke", "mini", "mini-classic", "mini-classic-grouped", "mini-ungrouped", "cpu",
           "cpu32", "cpu32-classic", "full")
# The order in which pages look for a profile to show: the classic setting first, then the
# whole data on a CPU (the classic training code first, then float32 before bf16), then the
# mini world, then the wiring check.
PROFILE_ORDER = ("full", "cpu32-classic", "cpu32", "cpu", "mini", "smoke")
# Profiles whose recipe a later profile replaced, with that profile. Their records stay on the
# results page beside the others; no chapter or essay reads them. `cpu` trained under bf16 on
# a stretched, clamped schedule that stayed on the loss plateau (performance appendix);
# `cpu32` runs the classic schedule in float32.
SUPERSEDED = {"cpu": "cpu32"}

def profile_from_dict(values: dict) -> Profile:
    """The inverse of `Profile.to_dict` (JSON turns tuples into lists; this turns them back)."""
    values = dict(values)
    for phase in ("pretrain", "finetune_scratch", "finetune_pretrained"):
        cfg = dict(values[phase])
        if "betas" in cfg:
            cfg["betas"] = tuple(cfg["betas"])
        values[phase] = TrainConfig(**cfg)
    for key in ("mini_world", "seeds", "recipe"):
        if values.get(key) is not None:
            values[key] = tuple(values[key])
    return Profile(**values)


def register_profile(profile: Profile) -> Profile:
    """Make `profile` known by name in this process; the built-in profiles cannot be replaced.

    Short-lived profiles (the reliability tests use one with more checkpoints than `smoke`)
    then run through the same CLI and pipeline as the built-in ones.
    """
    if profile.name in BUILTIN:
        raise ValueError(f"profile {profile.name!r} is built in and cannot be replaced")
    PROFILES[profile.name] = profile
    return profile


def register_from_environment() -> None:
    """Register the profiles listed in the JSON file `$BOOK_EXTRA_PROFILES`, if set.

    Child processes (the CLI started by `make gpu-run`, say) inherit the variable, so a
    profile registered this way is known to every process of a run.
    """
    path = os.environ.get("BOOK_EXTRA_PROFILES")
    if path:
        for values in json.loads(Path(path).read_text(encoding="utf-8")):
            register_profile(profile_from_dict(values))


def recipe_profile_name(base: str, options: tuple[str, ...]) -> str:
    """The name of `base` pretrained with recipe options: `base+option+...` (`base` alone
    without options)."""
    return "+".join((base, *options))


def with_recipe(base: Profile, options: tuple[str, ...]) -> Profile:
    """`base` pretrained with recipe options (named `base+option+...`, options in the order
    of `lib.core.datasets.RECIPES`, so one combination has one name and one results folder)."""
    from lib.core.datasets import RECIPES

    unknown = [o for o in options if o not in RECIPES]
    if unknown or not options or len(set(options)) != len(options):
        raise ValueError(f"recipe options must be distinct names from {', '.join(RECIPES)}; "
                         f"got {'+'.join(options) or 'none'}")
    ordered = tuple(o for o in RECIPES if o in options)
    if ordered != tuple(options):
        raise ValueError(f"write recipe options in this order: {'+'.join(ordered)}")
    return replace(base, name=recipe_profile_name(base.name, ordered), recipe=ordered,
                   description=f"{base.description}; pretraining recipe: {', '.join(ordered)}")


def world_for(profile: Profile, data: D.BirthplaceData) -> D.World:
    """The people a profile trains and evaluates on: the whole data or its mini world."""
    if profile.mini_world is None:
        return D.full_world(data)
    n_train, n_dev, seed = profile.mini_world
    return D.mini_world(data, n_train, n_dev, seed)


def get_profile(name: str) -> Profile:
    """The profile called `name` (or `NAME+OPTION...`: a profile with recipe options);
    unknown names list the valid ones."""
    base, *options = name.split("+")
    if base not in PROFILES or (options and PROFILES[base].recipe):
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)} "
                         "(optionally with recipe options, e.g. mini+mixed)")
    return with_recipe(PROFILES[base], tuple(options)) if options else PROFILES[base]


register_from_environment()
