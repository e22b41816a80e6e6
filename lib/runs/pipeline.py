"""The runs the book is made of: London baseline, pretraining, finetuning (with or without).

Each run writes, under `results/<profile>/`, a record `<run-id>.json` (written last, so a
record's presence means the run finished), its dev predictions, per-question details and
metrics log. Weights go under `checkpoints/<profile>/<run-id>/` (kept out of git). A run
whose record exists is skipped unless forced; an interrupted run resumes from its last
training checkpoint. CLI, notebooks and the GPU script all call these functions.
"""

from __future__ import annotations

import json
import os
import time

import torch

from lib.core import data as D
from lib.core import datasets as DS
from lib.core.atomic import atomic_write_json
from lib.core.checkpoint import load_weights, save_weights
from lib.core.evaluate import (
    ProbeResult,
    knowledge_probe,
    london_baseline,
    predict,
    question_prompts,
    score,
    write_predictions,
)
from lib.core.exclusive import one_process
from lib.core.model import GPT, GPTConfig
from lib.core.strangers import invented_names
from lib.core.train.loop import TrainResult, train
from lib.runs.matrix import KINDS, RunPaths, checkpoints_root, run_id
from lib.runs.profiles import Profile, get_profile, world_for
from lib.runs.records import provenance, read_record, write_record

STRANGERS = 300

def resolve_device(device: str = "auto") -> torch.device:
    """`auto` picks CUDA when present; an explicit CUDA request without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}; use auto, cpu or cuda") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA GPU is available")
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {device!r}; use auto, cpu or cuda")
    return resolved


def model_config(profile: Profile, vocab_size: int, variant: str) -> GPTConfig:
    """The GPT a profile trains, with the named attention variant."""
    return GPTConfig(vocab_size=vocab_size, block_size=profile.block_size, n_layer=profile.n_layer,
                     n_head=profile.n_head, n_embd=profile.n_embd, dropout=profile.dropout,
                     attn_dropout=profile.attn_dropout, attention=variant,
                     scaled_residual_init=profile.scaled_residual_init)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> GPT:
    """A model from a weights file; its config travels in the file's header."""
    weights, meta = load_weights(path)
    model = GPT(GPTConfig(**meta["config"]))
    model.load_state_dict(weights)
    return model.to(device).eval()


def check_questions(profile: Profile, world: D.World, data: D.BirthplaceData) -> None:
    """Encode the world's questions before any training: a character the vocabulary lacks
    (a mis-encoded copy, say) stops the run at once, naming file and line, not after it."""
    DS.FinetuneDataset(world.train, data.vocab, profile.block_size, profile.text_mode,
                      source=str(D.data_file("train", data.folder)))
    question_prompts(world.dev, data.vocab, profile.text_mode,
                     source=str(D.data_file("dev", data.folder)))


def _prepare(profile: Profile, device: str, data: D.BirthplaceData | None
             ) -> tuple[torch.device, D.BirthplaceData, D.World]:
    """Device, data and world of a training run, with every question checked before any work."""
    dev = resolve_device(device)
    data = data or D.load()
    world = world_for(profile, data)
    check_questions(profile, world, data)
    return dev, data, world


def _base_record(kind: str, profile: Profile, variant: str, seed: int, world: D.World,
                 data: D.BirthplaceData, device: torch.device) -> dict:
    return {
        "run_id": run_id(kind, variant, seed),
        "kind": kind,
        "variant": variant,
        "profile": profile.name,
        "seed": seed,
        "world": world.description,
        "config": profile.to_dict(),
        "dataset_checksums": data.checksums(),
        **provenance(device),
    }


def _existing(paths: RunPaths, force: bool) -> dict | None:
    if paths.record.exists() and not force:
        return read_record(paths.record)
    return None


def _only_process(paths: RunPaths, rid: str, profile: Profile):
    """The run's lock, taken once its data is checked and held while it trains and writes:
    a second process asking for the same run stops at once (`RunBusyError`)."""
    return one_process(paths.lock, f"{rid} ({profile.name} profile)")


def run_london(profile: str | Profile, data: D.BirthplaceData | None = None,
               force: bool = False) -> dict:
    """Always answer London on the profile's dev questions."""
    profile = get_profile(profile) if isinstance(profile, str) else profile
    paths = RunPaths.of(profile.name, "london")
    if (done := _existing(paths, force)) is not None:
        return done
    data = data or D.load()
    world = world_for(profile, data)
    started = time.time()
    preds = london_baseline(world.dev)
    result = score(preds, world.dev)
    write_predictions(paths.predictions, preds)
    record = _base_record("london", profile, "none", 0, world, data, torch.device("cpu"))
    record.update(metrics={"dev": result.to_dict()}, wall_time=time.time() - started,
                  files={"predictions": paths.predictions.name})
    return read_record(write_record(record))


def run_pretrain(profile: str | Profile, variant: str = "vanilla", seed: int = 0,
                 device: str = "auto", force: bool = False, progress: bool = True,
                 data: D.BirthplaceData | None = None, compile_model: bool = False,
                 cuda_graphs: bool = False, epoch_checkpoints: bool = True) -> dict:
    """Span-corruption pretraining on the profile's corpus, then the knowledge probe."""
    profile = get_profile(profile) if isinstance(profile, str) else profile
    rid = run_id("pretrain", variant, seed)
    paths = RunPaths.of(profile.name, rid)
    if (done := _existing(paths, force)) is not None and paths.weights.exists():
        return done
    dev, data, world = _prepare(profile, device, data)
    with _only_process(paths, rid, profile):
        # Another process may have finished the run while this one read the data.
        if (done := _existing(paths, force)) is not None and paths.weights.exists():
            return done
        started = time.time()
        dataset = DS.pretraining_dataset(world, data.vocab, profile.block_size, profile.recipe)
        torch.manual_seed(seed)
        model = GPT(model_config(profile, len(data.vocab), variant))
        result = train(model, dataset, profile.pretrain, seed=seed, state_path=paths.state,
                       log_path=paths.metrics, device=dev, progress=progress,
                       description=f"pretrain {variant} seed {seed}", snapshot_dir=paths.snapshots,
                       compile_model=compile_model, cuda_graphs=cuda_graphs,
                       epoch_checkpoints=epoch_checkpoints)
        started -= result.earlier_seconds  # a resumed run's times count its earlier processes
        meta = {"config": model.config.to_dict(), "run_id": rid, "profile": profile.name}
        save_weights(paths.weights, model, meta)
        train_time = time.time() - started
        probe = knowledge_probe(model, world.dev, data.biographies, data.vocab, device=dev)
        snapshots = []
        for snap in sorted(paths.snapshots.glob("epoch*.safetensors")):
            snap_model = load_model(snap, dev)
            snap_meta = load_weights(snap)[1]
            snap_probe = knowledge_probe(snap_model, world.dev, data.biographies, data.vocab,
                                         device=dev)
            snapshots.append({"epoch": snap_meta["epoch"], "step": snap_meta["step"],
                              "tokens": snap_meta["tokens"], "probe": snap_probe.summary(),
                              "file": str(snap.relative_to(checkpoints_root()))})
        unread = unread_probe(model, world, data, dev)
        atomic_write_json(paths.details, {"probe": probe.per_person(),
                                          **({"unread": unread.per_person()} if unread else {})})
        record = _base_record("pretrain", profile, variant, seed, world, data, dev)
        record.update(
            metrics={"final_loss": result.final_loss, "steps": result.steps, "tokens": result.tokens,
                     "probe": probe.summary(), "snapshots": snapshots,
                     **({"probe_unread": unread.summary()} if unread else {})},
            wall_time=time.time() - started, train_time=train_time,
            parameters=model.num_parameters(), cuda_graphs=graph_summary(result),
            files={"metrics_log": paths.metrics.name, "details": paths.details.name},
        )
        return read_record(write_record(record))


def unread_probe(model: torch.nn.Module, world: D.World, data: D.BirthplaceData,
                 device: torch.device) -> ProbeResult | None:
    """Both probes on as many people the model never read as the world has dev people
    (`lib.core.data.unread_people`); None for the whole data, where everyone was read."""
    people = D.unread_people(data, world, len(world.dev))
    return knowledge_probe(model, people, data.biographies, data.vocab, device=device) if people else None


def add_unread_probe(profile: str, variant: str = "vanilla", seed: int = 0,
                     device: str = "auto") -> dict:
    """Probe a finished pretraining's stored weights on never-read people and add the result
    to its record and details, for runs made before the pretraining did so itself. The
    addition names its own commit and time; the rest of the record is left as it was."""
    paths = RunPaths.of(profile, run_id("pretrain", variant, seed))
    if not paths.record.exists() or not paths.weights.exists():
        raise FileNotFoundError(f"{profile} {run_id('pretrain', variant, seed)}: the record and "
                                f"the weights ({paths.weights}) are both needed")
    dev = resolve_device(device)
    data = D.load()
    world = world_for(get_profile(profile), data)
    unread = unread_probe(load_model(paths.weights, dev), world, data, dev)
    if unread is None:
        raise ValueError(f"profile {profile} reads every biography: no never-read people to probe")
    details = json.loads(paths.details.read_text(encoding="utf-8"))
    atomic_write_json(paths.details, {**details, "unread": unread.per_person()})
    record = read_record(paths.record)
    record["metrics"]["probe_unread"] = unread.summary()
    record["probe_unread_added"] = {k: v for k, v in provenance(dev).items()
                                    if k in ("git_commit", "created", "torch_version")}
    return read_record(write_record(record))


def run_finetune(profile: str | Profile, variant: str = "vanilla", seed: int = 0,
                 pretrained: bool = False, device: str = "auto", force: bool = False,
                 progress: bool = True, data: D.BirthplaceData | None = None,
                 compile_model: bool = False, with_snapshots: bool = True,
                 cuda_graphs: bool = False, epoch_checkpoints: bool = True) -> dict:
    """Finetune on the profile's questions (from scratch or from the pretrained model), evaluate."""
    profile = get_profile(profile) if isinstance(profile, str) else profile
    kind = "pretrain_finetune" if pretrained else "finetune"
    rid = run_id(kind, variant, seed)
    paths = RunPaths.of(profile.name, rid)
    if (done := _existing(paths, force)) is not None:
        return done
    dev, data, world = _prepare(profile, device, data)
    with _only_process(paths, rid, profile):
        if (done := _existing(paths, force)) is not None:
            return done
        started = time.time()
        torch.manual_seed(seed)
        model = GPT(model_config(profile, len(data.vocab), variant))
        pretrain_record = None
        if pretrained:
            pre_paths = RunPaths.of(profile.name, run_id("pretrain", variant, seed))
            # Weights without a record are a pretraining killed before it finished: redo it.
            if not (pre_paths.weights.exists() and pre_paths.record.exists()):
                run_pretrain(profile, variant, seed, device, force=True, progress=progress,
                             data=data, compile_model=compile_model, cuda_graphs=cuda_graphs,
                             epoch_checkpoints=epoch_checkpoints)
            pretrain_record = read_record(pre_paths.record)
            weights, _ = load_weights(pre_paths.weights)
            model.load_state_dict(weights)
        cfg = profile.finetune_pretrained if pretrained else profile.finetune_scratch
        dataset = DS.FinetuneDataset(world.train, data.vocab, profile.block_size, profile.text_mode,
                                    source="train questions")
        result = train(model, dataset, cfg, seed=seed, state_path=paths.state, log_path=paths.metrics,
                       device=dev, progress=progress, description=f"{kind} {variant} seed {seed}",
                       compile_model=compile_model, cuda_graphs=cuda_graphs,
                       epoch_checkpoints=epoch_checkpoints)
        save_weights(paths.weights, model, {"config": model.config.to_dict(), "run_id": rid,
                                            "profile": profile.name})
        started -= result.earlier_seconds  # a resumed run's times count its earlier processes
        train_time = time.time() - started
        preds = predict(model, world.dev, data.vocab, profile.text_mode, device=dev,
                        source="dev questions")
        dev_score = score(preds.places, world.dev)
        train_preds = predict(model, world.train, data.vocab, profile.text_mode, device=dev,
                              source="train questions")
        # The exercise's submission: an answer for every line of the unlabelled test file, in order.
        test_preds = predict(model, data.test, data.vocab, profile.text_mode, device=dev,
                             source="test questions")
        strangers = _answer_strangers(model, profile, world, data, dev)
        snapshot_scores = []
        if pretrained and with_snapshots:
            snapshot_scores = _finetune_snapshots(profile, variant, seed, world, data, dev, cfg,
                                                  cuda_graphs=cuda_graphs,
                                                  epoch_checkpoints=epoch_checkpoints)
        # The run's files are written only now, with its record: a run stopped earlier (at a
        # deadline, say) leaves none of them behind to be packed or imported without a record.
        write_predictions(paths.predictions, preds.places)
        write_predictions(paths.test_predictions, test_preds.places)
        atomic_write_json(paths.details, {
            "dev": [{"name": q.name, "gold": q.place, "prediction": p, "logprob": lp}
                    for q, p, lp in zip(world.dev, preds.places, preds.logprobs, strict=True)],
            "strangers": strangers,
        })
        record = _base_record(kind, profile, variant, seed, world, data, dev)
        record.update(
            metrics={"dev": dev_score.to_dict(),
                     "train": score(train_preds.places, world.train).to_dict(),
                     "final_loss": result.final_loss, "steps": result.steps,
                     "tokens": result.tokens, "snapshots": snapshot_scores},
            wall_time=time.time() - started, train_time=train_time,
            pretrain_run=None if pretrain_record is None else pretrain_record["run_id"],
            parameters=model.num_parameters(), cuda_graphs=graph_summary(result),
            files={"predictions": paths.predictions.name,
                   "test_predictions": paths.test_predictions.name,
                   "metrics_log": paths.metrics.name, "details": paths.details.name},
        )
        return read_record(write_record(record))


def _answer_strangers(model: torch.nn.Module, profile: Profile, world: D.World,
                      data: D.BirthplaceData, dev: torch.device) -> list[dict]:
    """The model's answers about invented people, whose names occur in no data file (read by
    the Strangers essay): each name, its two parts, the answer and its log-probability."""
    strangers = invented_names(data, n=STRANGERS, seed=0, people=world.train)
    rows = [D.Question(s.question, None, s.name, i + 1) for i, s in enumerate(strangers)]
    preds = predict(model, rows, data.vocab, profile.text_mode, device=dev, source="invented names")
    return [{"name": s.name, "first": s.first, "last": s.last, "prediction": p, "logprob": lp}
            for s, p, lp in zip(strangers, preds.places, preds.logprobs, strict=True)]


def _finetune_snapshots(profile: Profile, variant: str, seed: int, world: D.World,
                        data: D.BirthplaceData, dev: torch.device, cfg, cuda_graphs: bool = False,
                        epoch_checkpoints: bool = True) -> list[dict]:
    """Finetune each pretraining snapshot the same way as the main finetune (the same step,
    graphed or not) and score it: accuracy vs pretraining."""
    pre_paths = RunPaths.of(profile.name, run_id("pretrain", variant, seed))
    dataset = DS.FinetuneDataset(world.train, data.vocab, profile.block_size, profile.text_mode,
                                source="train questions")
    scores = []
    for snap in sorted(pre_paths.snapshots.glob("epoch*.safetensors")):
        weights, meta = load_weights(snap)
        model = GPT(GPTConfig(**meta["config"]))
        model.load_state_dict(weights)
        state = pre_paths.snapshots / f".finetune-{snap.stem}.state.safetensors"
        train(model, dataset, cfg, seed=seed, state_path=state, device=dev, progress=False,
              cuda_graphs=cuda_graphs, epoch_checkpoints=epoch_checkpoints)
        preds = predict(model, world.dev, data.vocab, profile.text_mode, device=dev)
        scores.append({"epoch": meta["epoch"], "step": meta["step"], "tokens": meta["tokens"],
                       "dev": score(preds.places, world.dev).to_dict()})
    return scores


def graph_summary(result: TrainResult) -> dict:
    """How many training steps were replays of a captured CUDA graph (0 off a GPU), and why
    capture failed if it did: part of how a result was computed."""
    return {"replayed_steps": result.graphed_steps, "capture_failure": result.graph_failure}


def run(kind: str, profile: str | Profile, variant: str = "vanilla", seed: int = 0,
        device: str = "auto", force: bool = False, progress: bool = True,
        compile_model: bool | None = None, cuda_graphs: bool | None = None,
        epoch_checkpoints: bool | None = None) -> dict:
    """Dispatch one run of the experiment matrix by kind (`BOOK_COMPILE=1` turns on
    torch.compile, `BOOK_CUDA_GRAPHS=1` fixed-shape steps replayed as CUDA graphs,
    `BOOK_EPOCH_CHECKPOINTS=0` no resumable state between epochs: what the GPU script sets
    for its processes)."""
    if compile_model is None:
        compile_model = os.environ.get("BOOK_COMPILE") == "1"
    if cuda_graphs is None:
        cuda_graphs = os.environ.get("BOOK_CUDA_GRAPHS") == "1"
    if epoch_checkpoints is None:
        epoch_checkpoints = os.environ.get("BOOK_EPOCH_CHECKPOINTS") != "0"
    if kind == "london":
        return run_london(profile, force=force)
    if kind == "pretrain":
        return run_pretrain(profile, variant, seed, device, force, progress,
                            compile_model=compile_model, cuda_graphs=cuda_graphs,
                            epoch_checkpoints=epoch_checkpoints)
    if kind in ("finetune", "pretrain_finetune"):
        return run_finetune(profile, variant, seed, kind == "pretrain_finetune", device, force,
                            progress, compile_model=compile_model, cuda_graphs=cuda_graphs,
                            epoch_checkpoints=epoch_checkpoints)
    raise ValueError(f"unknown run kind {kind!r}; choose one of {', '.join(KINDS)}")


def summary_line(record: dict) -> str:
    """One aligned line per record for the command line: dev accuracy, or the probes for a
    pretraining."""
    m = record["metrics"]
    if "dev" in m:
        d = m["dev"]
        return (f"{record['profile']:>5} {record['run_id']:<40} dev {d['correct']:>4}/{d['total']:<4}"
                f" = {100 * d['accuracy']:5.1f} %")
    p = m.get("probe", {})
    return (f"{record['profile']:>5} {record['run_id']:<40} probe name "
            f"{p.get('name_gold_correct')}/{p.get('name_gold_total')}, bio "
            f"{p.get('bio_gold_correct')}/{p.get('bio_gold_total')}")
