"""Training: train_one_epoch, evaluate, fit -> history; best/last checkpoints; resume.

A run folder holds (file names: runs.py):
    config.json      the resolved TrainConfig (and the model spec)
    history.csv/json one row per epoch: train/val loss and accuracy, lr, seconds
    iterations.csv   the training loss of every iteration (paper Figures 3, 7)
    last.pt, best.pt checkpoints (see checkpoint.py); `fit(..., resume=True)` continues from last.pt;
                     with --ema, best.pt holds the weight average (what was validated), last.pt both

The folder is created when training starts (a run that fails on its data or config leaves none).
Each epoch writes best.pt, then last.pt, then the history: nothing claims an epoch that last.pt
does not hold (a full disk or a kill in between leaves the history behind, and --resume rewrites
it from last.pt). The checkpoint holds every random state (data order and augmentation, dropout
on CPU and CUDA), so a run killed at any point and resumed gives the same weights and losses as
one that was never interrupted. A write that fails (a full disk) is one line saying how to go on.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

try:
    import fcntl  # POSIX: the lock that keeps a second training out of a run folder
except ImportError:  # Windows
    fcntl = None

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from . import augment as aug
from . import bundled, distributed
from .checkpoint import RESUME_FIX, read_checkpoint, read_record, save_checkpoint, validated_acc
from .config import (
    ModelSpec,
    TrainConfig,
    flag,
    full_spec,
    is_spec_file,
    named_in_file,
    read_file,
    teacher_list,
    trained_model_kind,
)
from .cpu import available_memory
from .data import FerData, load_fer, mean_image, reading_for, say_leaked, subset_rows
from .distill import check_not_student, load_teacher, with_teacher
from .errors import (
    ConfigError,
    DataError,
    FerkitError,
    OutputError,
    ResumeError,
    first_line,
    out_of_memory_said,
    quoted,
    shell_word,
)
from .files import atomic_write, check_output, missing_folders, remove_empty, write_fix, write_target
from .finetune import freeze, frozen_norms, init_from, is_head
from .labels import DATA, LabelSet, describe_mapping, label_set, labels_of
from .model import PRESETS, FerNet, create_model, resolve_spec
from .outputs import csv_text
from .preprocess import autocast, fast_bf16, prepare, probabilities, resolve_precision, to_tensor
from .recipes import recipe
from .runs import BEST, CONFIG, HISTORY_CSV, HISTORY_FIELDS, HISTORY_JSON, ITERATIONS, LAST, broken_link

log = logging.getLogger(__name__)


def resolve_config(model: str | None = None, base: dict | None = None, source: str | Path | None = None, **overrides) -> TrainConfig:
    """TrainConfig = preset defaults < base (e.g. a --config file) < model and overrides (e.g. CLI flags).

    model: the preset or spec file (default: base's, else shallow), which wins over base's as the other
    overrides do (`--config run.json --model deep` trained run.json's model: --model was taken for a default).
    epochs, lr and l2 left unset take the preset's values (the paper's: 30/35 epochs,
    lr 1e-3/1e-2, L2 1e-6/1e-7); a spec file gets the shallow preset's, and an unknown name is an error.
    source: the file base was read from, which problems with its fields then name."""
    given = {k: v for k, v in {**overrides, "model": model}.items() if v is not None}
    d = {**(base or {}), **given}
    name = d["model"] if d.get("model") is not None else "shallow"
    d["model"] = name
    # a spec file trains with the shallow net's recipe; a run folder or checkpoint gets it too, for TrainConfig to
    # refuse with train's ways to go on from one (config.model_problem), not recipe's "must be a preset"
    merged = recipe("shallow" if is_spec_file(name) or trained_model_kind(name) else name)
    merged.update({k: v for k, v in d.items() if v is not None})
    try:
        return TrainConfig.from_dict(merged)
    except ConfigError as e:
        if source is None:
            raise
        raise ConfigError(named_in_file(str(e), str(source), set(base or {}) - set(given))) from None


# What --resume may change: the length (the schedule is re-planned), where the data, the teachers and the
# class names or FER+ votes are now (fit checks that the classes and training faces are the run's) and the
# machine (a run begun on a GPU goes on on a CPU)
RESUME_CHANGES = ("epochs", "data", "teacher", "label_names", "labels_file", "device", "threads")


def resume_config(run_dir: str | Path, **changes) -> TrainConfig:
    """The TrainConfig of the interrupted run in run_dir (its config.json), with the RESUME_CHANGES
    given (None: as the run had it)."""
    run = Path(run_dir)
    if not run.is_dir():  # (it said "no config.json there" of a file, or of a path that does not exist)
        what = "a file, not a run folder" if run.is_file() else "not a folder" if run.exists() else "no such folder"
        hint = f" (here {run.parent})" if run.is_file() and run.name in (LAST, BEST) else ""
        raise FerkitError(f"--resume {run}: {what}; give the --out folder of a ferkit train run{hint}")
    if not (run / LAST).exists():
        if not (run / CONFIG).exists():
            raise FerkitError(f"--resume {run}: no config.json there; give the --out folder of a ferkit train run")
        raise FerkitError(f"--resume {run}: {_no_last(run)}")
    source = run / CONFIG
    try:
        saved = read_file(source)
    except ConfigError as e:  # deleted or damaged (a full disk, an editor): last.pt holds the config it trained with
        if (run / CONFIG).exists() and not (run / CONFIG).is_file():  # nor could it be written anew, after the data load
            raise FerkitError(f"--resume {run}: {run / CONFIG} is not a file; remove it ({LAST} holds the run's config), "
                              "then resume") from None
        saved, source = _last_config(run), run / LAST
        log.warning(f"{e if (run / CONFIG).exists() else f'{run / CONFIG}: missing'}; resuming with the config "
                    f"saved in {LAST} (config.json is written anew)")
    saved.pop("spec", None)
    # a change of None keeps the run's value (--epochs 0 is a value: refused as the config is checked);
    # a value deleted or nulled by hand in config.json falls back to the preset's
    return resolve_config(base=saved, source=source, **changes)


def _last_config(run: Path) -> dict:
    """The config last.pt trained with, for a resume whose config.json is gone: its dict alone (read_record's quick
    read, tensors mapped, not read), as fit reads the file in full next, checks and all (it was read in full twice).
    One whose quick read holds no config is read in full here, for read_last's error."""
    config = (read_record(run / LAST, quick=True).ckpt or {}).get("config")
    return dict(config) if isinstance(config, dict) else dict(read_last(run)["config"])


def _no_last(run: Path) -> str:
    """Why a run folder without a readable last.pt cannot resume, and the way on that works. A last.pt that is a
    link to nothing is the run's own (its file moved: the run may hold many epochs), and `--out RUN` through it
    trained an epoch, then failed to save it; a history or best.pt left is refused by `--out RUN` (see _fit)."""
    if broken := _broken_last(run):
        return f"{broken}; point the link at the run's {LAST} to resume, or start a new run with --out NEW_FOLDER"
    gone = f"no {LAST} there (deleted, or the run stopped while saving it)"
    if best := from_best(run):  # (starting it again there is refused: it would replace that best.pt)
        return f"{gone}, so nothing to resume; its {best}"
    if kept := _kept(run):
        return (f"{gone} and no readable {BEST}, so nothing to resume; start a new run with --out NEW_FOLDER (one there "
                f"would replace its {' and '.join(kept)})")
    return (f"no last.pt there, so nothing to resume (the run stopped before its first epoch ended); start it again "
            f"with 'ferkit train --out {shell_word(run)}' and the flags you want")


def _broken_last(run: Path) -> str | None:
    """"<run>/last.pt: its last.pt is a symbolic link to ..." where it leads to no file, else None."""
    last = run / LAST
    return f"its {LAST} is {broken_link(last)}" if os.path.islink(last) and not last.exists() else None


def _best_in_the_way(run: Path) -> str | None:
    """Why a resumed run could not save its best.pt (a folder in its place, a link to a folder, a loop of links, a
    link into a folder that does not exist) and what to do, else None. Checked before --resume trains: the write
    failed an epoch later, when the first epoch that improved on the run's best was saved, and that epoch was lost.
    A link to a missing file whose folder exists is written through, as every write of a run's files is."""
    best = run / BEST
    try:
        target = write_target(best)
    except OSError as e:  # its reason ends with the fix: "...; create that folder or fix the link"
        return f"{best}: {e.strerror}, then resume (the run writes its {BEST} through it)"
    if target.is_dir():
        what = "a folder" if target == best else f"a symbolic link to the folder {target}"
        return f"{best}: {what}, where the run saves its {BEST}; move it out of the way, then resume"
    return None


def _best_gone(run: Path) -> str | None:
    """Why a resumed run's best.pt is written again: "missing" (deleted, or a link to a file that is gone), or "damaged
    (...)" where read_checkpoint refuses it (cut off, flipped bytes, not a checkpoint): the run would end with no usable
    best.pt where no resumed epoch beats best_acc. None where it reads, or where ferkit's user may not read it (its
    weights may be whole: they are not replaced unseen, and the done line says it cannot be read)."""
    best = read_record(run / BEST)
    if best.trouble != "damaged":
        return "missing" if best.trouble == "missing" else None
    return f"damaged ({getattr(best.error, 'problem', 'not a regular file')})"  # (a CheckpointError's, or a pipe's, a device's)


def _best_again(ckpt: dict, best_acc: float | None, weights: torch.nn.Module, out: Path, go_on: str | None,
                why: str) -> float | None:
    """Write a resumed run's best.pt again where it is gone (`why`: _best_gone's), from last.pt's epoch (`weights`: the
    validated ones, with --ema the average): the best of the epochs whose weights remain, and without validation
    (best_acc None) what best.pt always is. The resumed epochs then replace it as usual, when they score higher; a run
    that trains no more epochs still ends with one. Returns the run's best_acc now: that epoch's score.
    last.pt is rewritten with it first: a kill in between leaves best.pt as it was, and the next resume does this again."""
    acc = validated_acc(ckpt) if best_acc is not None else None
    if acc != ckpt["best_acc"]:  # (last.pt must not claim the score of weights that are gone)
        with _saving(out / LAST, out, go_on):
            save_checkpoint({**ckpt, "best_acc": acc}, out / LAST)
    best = {k: v for k, v in ckpt.items() if k != "ema"}
    with _saving(out / BEST, out, go_on):
        save_checkpoint({**best, "best_acc": acc, "state_dict": weights.state_dict(), "optimizer": {}, "scheduler": {}}, out / BEST)
    epoch, again = ckpt["epoch"], "written again" if why == "missing" else "replaced"
    lost = _scored(ckpt["history"], best_acc) if best_acc is not None else None  # the epoch best.pt held
    if best_acc is None:  # (a damaged file is worth a warning; a deleted one without validation is no loss)
        (log.info if why == "missing" else log.warning)(
            f"{out / BEST}: {why}; {again} from {LAST}, epoch {epoch} (without validation the last epoch's)")
    elif acc == best_acc:
        tied = f" (epoch {lost}'s weights, which it held, scored as much)" if lost not in (None, epoch) else ""
        log.warning(f"{out / BEST}: {why}; {again} from {LAST}, whose epoch {epoch} scored the run's best, {acc:.4f}{tied}")
    else:
        scored = f"{acc:.4f}" if acc is not None else "no score in the history"
        gone = (f"epoch {lost}'s weights, which scored {best_acc:.4f}," if lost is not None else
                f"the weights that scored {best_acc:.4f}")
        log.warning(f"{out / BEST}: {why}, so {gone} are gone; {again} from {LAST}, "
                    f"epoch {epoch} ({scored}), the best of the epochs whose weights remain; a resumed epoch that scores higher "
                    f"replaces it")
    return acc


def _scored(history: list[dict], best_acc: float) -> int | None:
    """The epoch whose weights a gone best.pt held: the first in the history that scored best_acc (an epoch that tied
    does not replace best.pt), or None where no row did (a history edited by hand). The warning named only the score."""
    return next((row["epoch"] for row in history if row.get("val_acc") == round(best_acc, 5)), None)


def _kept(run: Path) -> list[str]:
    """The files of an epoch in a run folder without a last.pt, which a new run into it would replace;
    a link to nothing among them is kept too (the new run's write through it failed after an epoch)."""
    return [f for f in (BEST, HISTORY_JSON, HISTORY_CSV) if os.path.lexists(run / f)]


def read_last(run: Path) -> dict:
    """The run's last.pt for --resume. Unreadable (copied in part, a disk failing), the error points
    at the run's best.pt, whose weights can start a new run: the epochs are not lost."""
    try:
        return read_checkpoint(run / LAST, resume=True)
    except ResumeError:  # readable, with its own fix
        raise
    except FerkitError as e:
        best = from_best(run)
        if best is None:
            raise e from None
        raise FerkitError(f"{e}. Its {best}") from None


def from_best(run: Path) -> str | None:
    """How to go on from a run's best.pt where its last.pt cannot resume (unreadable, deleted, never written: a
    full disk or a kill in the first epoch, between the two): "best.pt is whole (epoch N): start a new run from
    its weights with '...'", the epochs it holds are not lost; None without a whole best.pt."""
    best = read_record(run / BEST).ckpt
    if best is None:
        return None
    net, why = _net_of(run, best)
    return (f"{BEST} is whole (epoch {best.get('epoch', '?')}): start a new run from its weights with "
            f"'ferkit train {net} --init-from {shell_word(run / BEST)} --out NEW_FOLDER'{why}")


def _net_of(run: Path, best: dict) -> tuple[str, str]:
    """The flags that give from_best's new run the run's net and data, and a note: --config of its config.json, or where
    that does not read (damaged or deleted, as its last.pt may be), the model and data best.pt's config records (its
    advice named the config.json that had just failed to read)."""
    try:
        read_file(run / CONFIG)
        return f"--config {shell_word(run / CONFIG)}", ""
    except ConfigError:
        config = best.get("config") if isinstance(best.get("config"), dict) else {}
    model, data = config.get("model"), config.get("data")
    flags = f"--model {shell_word(model) if isinstance(model, str) and model else '(the preset or spec it trained)'}"
    flags += f" --data {shell_word(data)}" if isinstance(data, str) and data else ""
    gone = "is missing" if not (run / CONFIG).exists() else "does not read"
    return flags, f" (its {CONFIG} {gone}: add the other flags the run trained with)"


@dataclass
class Batches:
    """Tensors of one split: mean-subtracted images and labels, plus HOG (and mirrored HOG)."""

    x: torch.Tensor  # (N, C, H, W) float32: the model's input (FER2013: (N, 1, 48, 48))
    y: torch.Tensor  # (N,) int64: the label set's label of each face (training: its targets' top), used for accuracy
    hog: torch.Tensor | None = None  # (N, D) float32
    hog_flip: torch.Tensor | None = None  # (N, D) HOG of the mirrored faces (training only)
    targets: torch.Tensor | None = None  # (N, C) FER+ training targets: vote distribution or multi-target mask
    # (H, W[, C]) float32 mean image x is centred on, for the photo augmentations' pixels; numpy, not a
    # tensor, so that a DDP shard (distributed.epoch indexes every tensor by face) keeps it whole
    mean: np.ndarray | None = None

    def __len__(self):
        return len(self.y)


def make_batches(images: np.ndarray, labels: np.ndarray, mean: np.ndarray, spec: ModelSpec, flips: bool = False,
                 targets: np.ndarray | None = None) -> Batches:
    hog = hog_flip = None
    if spec.hog is not None:
        from .hog import hog_features

        hog = torch.from_numpy(hog_features(images, spec.hog))
        if flips:
            hog_flip = torch.from_numpy(hog_features(np.ascontiguousarray(images[:, :, ::-1]), spec.hog))
    t = torch.from_numpy(targets) if targets is not None else None
    return Batches(to_tensor(images, mean), torch.from_numpy(labels), hog, hog_flip, t, np.asarray(mean, np.float32))


def split_batches(data: FerData, cfg: TrainConfig, spec: ModelSpec, mean: np.ndarray | None, labels: LabelSet,
                  rows: np.ndarray):
    """(train, val, mean) Batches for cfg: the label set's targets for cfg.label_mode in training and
    its evaluation labels in validation (faces without one are left out). rows: the label set's
    annotations of every row of data (labels.annotations)."""
    train_x, own = data.split("train")
    train_r = rows[data.in_split("train")]
    if cfg.train_subset >= len(train_x) > 0:  # (it trained on them all, which the run's config did not say)
        log.warning(f"{data.source}: --train-subset {cfg.train_subset} is not under its {len(train_x)} training faces: "
                    "training on all of them")
    elif cfg.train_subset:
        # by the data's own classes, as search.train_images cuts them for --cv (FER+ votes: their most-voted emotion)
        pick = subset_rows(train_r.argmax(1) if train_r.ndim > 1 else own, cfg.train_subset, cfg.seed)
        train_x, train_r = train_x[pick], train_r[pick]
    train_y, targets, keep = labels.targets(train_r, cfg.label_mode, f"{data.source}: the training rows")
    train_x, train_y = train_x[keep], train_y[keep]
    targets = targets[keep] if targets is not None else None
    if rows.ndim == 1:  # (FER+ votes are (N, 10)): a class with faces, but none training, is never learnt; was unsaid
        _say_untrained(data, cfg, labels, rows, train_y)
    if len(train_x) < 2:  # batch norm takes the statistics of 2 or more faces
        subset = f" (--train-subset {cfg.train_subset})" if cfg.train_subset else ""
        rule = (f"; --label-mode {cfg.label_mode} keeps the faces whose votes (single votes ignored) settle on emotions, "
                "not unknown or not-a-face" if labels.reads_votes(data) else "")
        raise DataError(f"{data.source}: {len(train_x)} training face(s) with a label{subset}; training needs at least 2{rule}")
    own = mean_image(train_x)
    if mean is not None and not np.allclose(own, mean, atol=0.01):  # resuming: last.pt's mean is of the faces it trained on
        raise DataError(f"{data.source}: its training faces are not those the run trained on (their mean image differs from "
                        "last.pt's): faces were added, removed or moved between splits, or --train-subset changed. Put the "
                        "data back as they were to resume, or start a new run")
    mean = mean if mean is not None else own
    train = make_batches(train_x, train_y, mean, spec, flips=cfg.flip, targets=targets)
    val = None
    if data.has("val"):
        val_x, _ = data.split("val")
        val_y, _ = labels.eval_labels(rows[data.in_split("val")], f"{data.source}: the val rows")
        scored = val_y >= 0
        if scored.any():
            val = make_batches(val_x[scored], val_y[scored], mean, spec, flips=cfg.tta)
        else:  # e.g. FER+ votes with no majority emotion: nothing to validate on (accuracy was nan each epoch)
            log.warning(f"{data.source}: none of its {len(scored)} PublicTest faces has a {labels.title} label to score; "
                        "the best checkpoint is the last epoch's")
    return train, val, mean


def _say_untrained(data: FerData, cfg: TrainConfig, labels: LabelSet, rows: np.ndarray, train_y: np.ndarray) -> None:
    """A warning naming the classes the data hold faces of but the training faces lack: all in val/test
    (a split of one's own), or not drawn by --train-subset (fewer images than classes, or a class of one)."""
    untrained = np.setdiff1d(np.unique(rows[rows >= 0]), train_y)
    if not untrained.size:
        return
    in_train = set(np.unique(rows[data.in_split("train")]).tolist())
    cut = [labels.emotions[i] for i in untrained if i in in_train]
    held = [labels.emotions[i] for i in untrained if i not in in_train]
    if held:
        log.warning(f"{data.source}: no training faces of {', '.join(held)}, only val/test ones: the model cannot learn "
                    f"{'them' if len(held) > 1 else 'it'}; move some of those faces to the training split")
    if cut:
        log.warning(f"{data.source}: no training faces of {', '.join(cut)} among the {cfg.train_subset} drawn (--train-subset): "
                    f"the model cannot learn {'them' if len(cut) > 1 else 'it'}; give a larger --train-subset, or none")


def task_loss(logits: torch.Tensor, y: torch.Tensor, targets: torch.Tensor | None, cfg: TrainConfig, gen: torch.Generator):
    """The training loss of a batch: cross-entropy on labels, or on FER+ targets by label mode."""
    ls = cfg.label_smoothing
    if targets is None or cfg.label_mode == "majority":  # majority's targets are one-hot on y
        return F.cross_entropy(logits, y, label_smoothing=ls)
    if cfg.label_mode == "crossentropy":
        return F.cross_entropy(logits, targets, label_smoothing=ls)
    if cfg.label_mode == "probability":  # a label drawn from the vote distribution, anew each time
        drawn = torch.multinomial(targets.cpu(), 1, generator=gen).squeeze(1).to(logits.device)
        return F.cross_entropy(logits, drawn, label_smoothing=ls)
    # multi_target: right if it is any of the accepted emotions
    return -(torch.softmax(logits, 1) * targets).amax(1).clamp_min(1e-7).log().mean()


def mixed_loss(logits: torch.Tensor, y: torch.Tensor, targets: torch.Tensor | None, mix: aug.Mix | None, cfg: TrainConfig,
               gen: torch.Generator) -> torch.Tensor:
    """task_loss of a batch whose faces were mixed in pairs (mixup, CutMix): each face's loss on its own
    targets and on its partner's, weighted by their shares. For cross-entropy (hard labels, FER+ votes)
    that is the cross-entropy on the mixed targets lam t + (1 - lam) t[perm], smoothing included;
    probability draws from each face's votes; multi_target's sets of accepted emotions do not blend, their losses do."""
    if mix is None:
        return task_loss(logits, y, targets, cfg, gen)
    perm = mix.perm.to(y.device)
    partner = task_loss(logits, y[perm], targets[perm] if targets is not None else None, cfg, gen)
    return mix.lam * task_loss(logits, y, targets, cfg, gen) + (1 - mix.lam) * partner


def mirror_disagreement(logits: torch.Tensor, mirrored: torch.Tensor) -> torch.Tensor:
    """--flip-consistency's term: the symmetric KL divergence between the predictions for faces and for
    their mirror images (R-Drop's form, Liang et al. 2021, with the mirror for the second pass);
    the gradient reaches both passes, so neither view is the other's fixed target."""
    a, b = F.log_softmax(logits, 1), F.log_softmax(mirrored, 1)
    # F.kl_div(q, p) is KL(p || q)
    return (F.kl_div(b, a, log_target=True, reduction="batchmean") + F.kl_div(a, b, log_target=True, reduction="batchmean")) / 2


def weight_average(model: torch.nn.Module, decay: float) -> AveragedModel | None:
    """--ema's exponential moving average of model's weights and batch-norm statistics (None: off);
    its first update copies the weights, each later one moves it (1 - decay) of the way to them."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True) if decay else None


def _optimizer(model: FerNet, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer of the model's trainable parameters (frozen ones, requires_grad False, are left
    out). L2 applies to weights only, not to biases and batch-norm parameters. With cfg.backbone_lr,
    the head's groups come first (at cfg.lr; param_groups[0] is what the history records), then
    the rest's at cfg.lr x backbone_lr; without it the two groups are as they always were (so
    older runs resume)."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    parts = [(params, cfg.lr)]
    if cfg.backbone_lr is not None:
        parts = [([(n, p) for n, p in params if is_head(model, n)], cfg.lr),
                 ([(n, p) for n, p in params if not is_head(model, n)], cfg.lr * cfg.backbone_lr)]
    groups = [g for part, lr in parts for g in (
        {"params": [p for _, p in part if p.ndim > 1], "weight_decay": cfg.l2, "lr": lr},
        {"params": [p for _, p in part if p.ndim <= 1], "weight_decay": 0.0, "lr": lr})
        if g["params"] or cfg.backbone_lr is None]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    return torch.optim.Adam(groups, lr=cfg.lr)


ONECYCLE_WARMUP = 0.2  # the share of the steps in which the one-cycle schedule warms up to its peak rate


def _scheduler(opt, cfg: TrainConfig, total_steps: int):
    """Stepped once per iteration."""
    if cfg.schedule == "onecycle":
        warmup = ONECYCLE_WARMUP
        # torch's warm-up ends at step warmup * total_steps - 1 and it divides by that width: 0 at 5 steps in all (1
        # epoch of 5 batches, 5 epochs of 1: a ZeroDivisionError traceback as training started). A hair less is the
        # same schedule, its peak at step 0 and the rest annealing, which torch computes
        if warmup * total_steps == 1:
            warmup *= 0.999
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=total_steps,
                                                   pct_start=warmup)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.MultiStepLR(opt, [total_steps // 2, total_steps * 3 // 4], 0.1)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)


def batch_starts(n: int, batch_size: int) -> range:
    """Where each training batch of n faces starts: one a step of the schedule. A lone remainder is dropped
    (batch norm needs 2+ samples)."""
    starts = range(0, n, batch_size)
    return starts[:-1] if n > 1 and n % batch_size == 1 else starts


def train_one_epoch(model, data: Batches, opt, sched, cfg: TrainConfig, gen: torch.Generator, device, progress=None,
                    teachers: list = (), ema: AveragedModel | None = None):
    """One pass over the shuffled training data; returns (mean loss, accuracy, per-iteration losses).
    ema (--ema): the weight average, updated after every step."""
    model.train()
    for m in frozen_norms(model):  # --freeze: frozen layers' batch norms keep their statistics
        m.eval()
    n = len(data)
    perm = torch.randperm(n, generator=gen)
    total_loss, correct, seen, losses = 0.0, 0, 0, []
    for start in batch_starts(n, cfg.batch_size):
        idx = perm[start : start + cfg.batch_size]
        x, y = data.x[idx], data.y[idx]
        targets = data.targets[idx] if data.targets is not None else None
        hog = data.hog[idx] if data.hog is not None else None
        hog_m = data.hog_flip[idx] if data.hog is not None else None  # of the mirror image (--flip-consistency)
        if cfg.flip:
            m = aug.flip_mask(len(idx), gen)
            x = aug.flip(x, m)
            if hog is not None:
                hog, hog_m = torch.where(m.view(-1, 1), hog_m, hog), torch.where(m.view(-1, 1), hog, hog_m)
        x = aug.augment(x, gen, cfg.crop_pad, cfg.rotate, cfg.erase, cfg.photo_aug, data.mean, cfg.zoom)  # (HOG: of the face as it was)
        mix = aug.draw_mix(len(idx), x.shape[-2:], gen, cfg.mixup, cfg.cutmix, cfg.mixup_prob)
        if mix is not None:  # the teachers see the mixed faces too
            x = mix.images(x)
            hog, hog_m = (mix.features(hog), mix.features(hog_m)) if hog is not None else (None, None)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        hog, hog_m = (hog.to(device), hog_m.to(device)) if hog is not None else (None, None)
        targets = targets.to(device) if targets is not None else None
        with autocast(device, cfg.precision):
            if cfg.flip_consistency:  # the faces and their mirror images in one pass (one set of batch statistics)
                both = model(torch.cat([x, x.flip(-1)]), torch.cat([hog, hog_m]) if hog is not None else None)
                logits, mirrored = both.float().chunk(2)
            else:
                logits = model(x, hog).float()
        loss = mixed_loss(logits, y, targets, mix, cfg, gen)
        if teachers:
            views = (x, x.flip(-1)) if cfg.teacher_tta else (x,)
            loss = with_teacher(loss, logits, [t.logits(v) for t in teachers for v in views], cfg)
        if cfg.flip_consistency:
            loss = loss + cfg.flip_consistency * mirror_disagreement(logits, mirrored)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if ema is not None:
            ema.update_parameters(model)
        lv = loss.item()
        if not math.isfinite(lv):
            raise FerkitError(f"the training loss became {lv}; lower --lr (now {cfg.lr}) or check the data")
        losses.append(lv)
        total_loss += lv * len(idx)
        seen += len(idx)
        correct += (logits.argmax(1) == y).sum().item()  # mixed faces: against each one's own label
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{lv:.3f}")
    return total_loss / max(1, seen), correct / max(1, seen), losses


@torch.no_grad()
def evaluate(model, data: Batches, device, batch_size: int = 512, tta: bool = False, precision: str = "fp32") -> dict:
    """Loss, accuracy and probabilities (N, C) on a split, in eval mode."""
    model.eval()
    probs, total = [], 0.0
    for start in range(0, len(data), batch_size):
        sl = slice(start, start + batch_size)
        x, y = data.x[sl].to(device), data.y[sl].to(device)
        hog = data.hog[sl].to(device) if data.hog is not None else None
        hog_f = data.hog_flip[sl].to(device) if data.hog_flip is not None else None
        p = probabilities(model, x, hog, tta, hog_f, precision)
        total += F.nll_loss(torch.log(p.clamp_min(1e-12)), y, reduction="sum").item()
        probs.append(p.cpu())
    probs = torch.cat(probs) if probs else torch.zeros(0, model.spec.num_classes)
    acc = (probs.argmax(1) == data.y).float().mean().item() if len(data) else float("nan")
    return {"loss": total / max(1, len(data)), "acc": acc, "probs": probs.numpy()}


def write_history(history: list[dict], iter_loss: list[float], out: Path) -> None:
    """history.json, history.csv (one row per epoch) and iterations.csv (loss per iteration), each atomically."""
    atomic_write(out / HISTORY_JSON, json.dumps(history, indent=1))
    table = [HISTORY_FIELDS] + [[row.get(k) for k in HISTORY_FIELDS] for row in history]
    atomic_write(out / HISTORY_CSV, csv_text(table, lineterminator="\n"))
    atomic_write(out / ITERATIONS, "iteration,loss\n" + "".join(f"{i + 1},{v:.5f}\n" for i, v in enumerate(iter_loss)))


def rng_states() -> dict:
    """Every global random state training draws from: torch's CPU generator (dropout on CPU) and the CUDA ones."""
    states = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def _replan(ckpt: dict, cfg: TrainConfig, world: int) -> str | None:
    """What in cfg makes a resumed run's schedule other than last.pt's, in words (None: nothing): its length, its
    steps per epoch (another number of processes), or a learning rate edited into config.json, which last.pt's
    schedule and optimizer state replaced unsaid unless the schedule was re-planned for another reason."""
    was, world_was = ckpt["config"], ckpt.get("world_size", 1)
    why = [] if (was["epochs"], world_was) == (cfg.epochs, world) else [
        f"{cfg.epochs} epochs (was {was['epochs']}) on {world} process(es) (was {world_was})"]
    return "; ".join(why + [f"{k} {getattr(cfg, k)} (was {was.get(k)})" for k in ("lr", "backbone_lr")
                            if was.get(k) != getattr(cfg, k)]) or None


@contextmanager
def _restoring(path: Path, what: str):
    """Turn torch's error on a training state that passed check_resume_state but still does not fit
    this run (e.g. an optimizer of another model) into one line naming the file and the fix."""
    try:
        yield
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as e:
        first = first_line(e)
        raise ResumeError(f"{path}: cannot resume from it: its {what} does not fit this run "
                          f"({type(e).__name__}: {first}); {RESUME_FIX}") from None


def _check_optimizer_state(opt: torch.optim.Optimizer) -> None:
    """A ValueError (for _restoring) where a loaded optimizer's per-weight state (Adam's moments, SGD's momentum)
    does not fit its weight or is not finite: torch's load_state_dict takes any tensors there, and the first step
    then failed with a traceback, or made the loss NaN ("lower --lr")."""
    for i, w in enumerate(w for group in opt.param_groups for w in group["params"]):
        for name, v in opt.state.get(w, {}).items():
            if isinstance(v, torch.Tensor) and v.ndim and v.shape != w.shape:
                raise ValueError(f"{name} of weight {i} has shape {tuple(v.shape)}, the weight's is {tuple(w.shape)}")
            if isinstance(v, torch.Tensor) and v.is_floating_point() and not torch.isfinite(v).all():
                raise ValueError(f"{name} of weight {i} holds NaN or infinite values")


@contextmanager
def _saving(path: Path, out: Path, go_on: str | None = None):
    """One OutputError naming the file (the one the error names, else path) and how to go on when writing
    it fails (a full disk, an unwritable folder): atomic writes leave the previous file whole, so a last.pt
    there resumes. go_on: how, where another command than `ferkit train` runs the training (a search)."""
    try:
        yield
    except OSError as e:
        resume = f"continue with 'ferkit train --resume {shell_word(out)}'"
        then = go_on or (resume if (out / LAST).exists() else _start_again(out))
        raise OutputError(f"{e.filename or path}: cannot write it ({e.strerror or e}); {write_fix(e)}, then {then}") from None


def _start_again(out: Path) -> str:
    """How to go on from a run that stopped before it saved an epoch to resume from: start it again, where the
    best.pt of its first epoch (written before last.pt) is not in the way of a new run into the folder."""
    best = from_best(out)
    if best is None:
        return "start the run again (it had not saved an epoch to resume from)"
    return f"start the run again with another --out (it had not saved an epoch to resume from); its {best}"


@contextmanager
def _sole_writer(out: Path, flag: str):
    """Create the run folder and hold an exclusive lock on it while the run trains, so a second `ferkit
    train` into it (two runs started in the same second share the default --out; a resume of a run that
    still trains) is refused instead of mixing its checkpoints with this run's. The lock goes with the
    process (flock; none on Windows). A run that fails before writing anything leaves no folder behind."""
    made = missing_folders([out])  # what this run creates
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out, os.O_RDONLY)
    except OSError as e:
        raise FerkitError(f"{flag} {out}: cannot create or open it ({e.strerror or e}); {write_fix(e)}") from None
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another process holds it
                raise FerkitError(f"{flag} {out}: another 'ferkit train' is writing this run now; wait for it to end "
                                  "(or stop it), or give another --out") from None
            except OSError as e:  # a file system without locks (some network ones): train on, unguarded
                log.warning(f"{out}: cannot lock the run folder ({e.strerror or e}); a second training into it "
                            "would not be refused")
        try:
            yield
        except BaseException:  # (only once the lock is held: the folder a run refused here made is the other's)
            remove_empty(made)
            raise
    finally:
        os.close(fd)


def _check_memory(spec: ModelSpec, cfg: TrainConfig) -> None:
    """Refuse, before any data are read, a model whose weights and training state, or whose activations at the
    batch size, alone (lower bounds) exceed the memory free now: allocating them would end in the kernel's
    out-of-memory killer, which names nothing (and may take another process with it)."""
    free = available_memory()
    if free is None:
        return
    # float32 weights and --ema's copy of them, and (at each step, none counted where --freeze keeps some fixed) their
    # gradients and the optimizer's state: Adam's two moments, SGD's momentum
    copies = 1 + bool(cfg.ema) + (0 if cfg.freeze else 1 + (1 if cfg.optimizer == "sgd" else 2))
    n = spec.parameters()
    if n * 4 * copies > free:
        held = [] if cfg.freeze else [f"their gradients and {cfg.optimizer}'s state"]
        held += ["--ema's copy"] if cfg.ema else []
        raise ConfigError(f"this model's ~{n:,} weights need at least {n * 4 * copies / 2**30:.1f} GiB in training"
                          f"{' (with ' + ' and '.join(held) + ')' if held else ''}, over the {free / 2**30:.1f} GiB of memory "
                          "free; use fewer filters, units or layers, or pool more before the FC layers")
    need = spec.activations() * 4 * cfg.batch_size
    if need > free:
        raise ConfigError(f"this model's activations at --batch-size {cfg.batch_size} need at least {need / 2**30:.1f} GiB, "
                          f"over the {free / 2**30:.1f} GiB of memory free; lower --batch-size or the model's size "
                          "(in_size, filters, or pool earlier)")


# What a resumed run keeps from its start, which config.json cannot change: last.pt's weights, optimizer and schedule
# state are of the net, optimizer and batches these made; the seed, init_from and its spec (config.json's record) made
# its first weights; the split fields, --train-subset and the seed chose the faces it trains and validates on, and so,
# with FER+ votes, does label_mode (each mode keeps the faces its own rule settles, ferplus.targets: majority drops those
# without a majority): these were refused only once the data were read, as a mean image that differs, naming none of
# them. --epochs may change (the schedule is re-planned), and so may what applies from the next step on (lr, l2, the
# augmentations), and RESUME_CHANGES
RESUME_FIXED = ("model", "overrides", "labels", "optimizer", "schedule", "batch_size", "ema", "freeze", "seed", "init_from",
                "train_subset", "split_seed", "val_fraction", "test_fraction", "label_mode")


def _check_resume(ckpt: dict, cfg: TrainConfig, out: Path) -> None:
    """A FerkitError unless last.pt can go on under cfg: the same net and optimizer, and not past --epochs. Every field
    of RESUME_FIXED (and of the spec config.json records) that differs from last.pt's is one line of one error, before
    any data are read, and --epochs below those done and a --teacher count not the run's are lines of it too: an edit
    of the seed, the spec or init_from was ignored unsaid, one of the others refused one by one."""
    was, now = ckpt["config"], absolute_paths(cfg)  # last.pt keeps absolute paths (a search's retry gives them as typed)
    changed = [_disagrees(k, getattr(now, k), was[k]) for k in RESUME_FIXED if k in was and was[k] != getattr(now, k)]
    spec = _spec_changes(out, ckpt["spec"])
    changed += spec
    problems = []
    if changed:
        new_net = " (the edited spec saved as a JSON file and given with --model FILE)" if spec else ""
        problems.append(f"--resume {out}: {out / CONFIG} was edited in fields a resumed run cannot change ({LAST} holds "
                        "the weights and state they made):\n  - " + "\n  - ".join(changed) + "\nput them back as the run "
                        f"wrote them to resume it (--epochs may grow), or train them in a new run: 'ferkit train --config "
                        f"{shell_word(out / CONFIG)} --out NEW_FOLDER'{new_net}")
    if ckpt["epoch"] > cfg.epochs:  # the schedule cannot be replayed past its end
        problems.append(f"--epochs {cfg.epochs}: the run in {out} has already trained {ckpt['epoch']} epochs; "
                        f"give --epochs {ckpt['epoch']} or more, or leave it out")
    taught = teacher_list(was.get("teacher"))
    if len(taught) != len(cfg.teacher):  # (one added distilled the rest of the run, its config saying all of it)
        what = f"{len(taught)} teacher{'s' if len(taught) > 1 else ''} ({', '.join(map(str, taught))})" if taught else "no teacher"
        problems.append(f"--teacher: the run in {out} trained with {what}; --resume takes --teacher for where the "
                        "run's teachers are now (moved), not to add or remove any; leave it out to resume, or start a "
                        "new run with the teachers you want")
    if problems:  # one error for all: each fixed in turn was one more refused resume
        raise FerkitError("\n".join(problems))


def _disagrees(name: str, now, was) -> str:
    """One line of _check_resume's error: a field, its value in config.json and the value the run trained with."""
    return f"{name} is {quoted(repr(now), 60)} in {CONFIG}; the run trained with {quoted(repr(was), 60)}"


def _spec_changes(out: Path, spec: dict) -> list[str]:
    """Where the spec recorded in the run's config.json differs from last.pt's `spec`, field by field as --set names
    them (spec.convs.0.filters): a resumed run builds last.pt's net, and an edit of the record went unsaid. None where
    config.json cannot be read or records no spec: last.pt's config is resumed then (resume_config), and written there."""
    try:
        written = read_file(out / CONFIG).get("spec")
    except ConfigError:
        return []
    if written is None:
        return []
    return [f"{name} has {len(a)} layers in {CONFIG}; the run trained with {len(b)}" if isinstance(a, list) and
            isinstance(b, list) else _disagrees(name, a, b)
            for name, a, b in _differences(full_spec(written), full_spec(spec), "spec")]


def _say_spec_file_changed(ckpt: dict, cfg: TrainConfig) -> None:
    """A warning where the spec file the run was trained from holds another net now: the resumed run builds last.pt's,
    and an edit made to train another net went unsaid. Not an error: the file may be edited for a new run while this
    one goes on, and a file gone or unreadable is no matter (last.pt holds the net)."""
    if not is_spec_file(cfg.model):
        return
    try:
        now = resolve_spec(cfg.model, cfg.overrides).to_dict()
    except ConfigError:
        return
    was = full_spec(ckpt["spec"])
    if now["num_classes"] is None and isinstance(was, dict):  # (the label set's, as the run resolved it)
        now["num_classes"] = was.get("num_classes")
    changed = [name for name, _, _ in _differences(now, was, "spec")]
    if changed:
        log.warning(f"{cfg.model}: changed since the run began ({', '.join(changed)}); the resumed run goes on with the "
                    f"net it trained, recorded in {LAST}; to train the changed net, start a new run with --out NEW_FOLDER")


def _differences(now, was, path: str) -> list[tuple[str, object, object]]:
    """(dotted path, now, was) of each value that differs between two specs' dicts and lists; a list of layers
    of another length, as one."""
    if isinstance(now, dict) and isinstance(was, dict):
        return [d for k in sorted(set(now) | set(was), key=str) for d in _differences(now.get(k), was.get(k), f"{path}.{k}")]
    if isinstance(now, list) and isinstance(was, list) and len(now) == len(was):
        return [d for i, (a, b) in enumerate(zip(now, was)) for d in _differences(a, b, f"{path}.{i}")]
    return [] if now == was else [(path, now, was)]


def absolute_paths(cfg: TrainConfig) -> TrainConfig:
    """cfg with its file paths made absolute, so that its config file works from any folder
    (evaluate, report, --resume, a search's best.yaml). A preset's name stays a name, even where
    the current folder has a file or folder of that name (a run called `shallow`, say)."""
    for k in ("data", "model", "labels_file", "init_from", "label_names"):
        path = getattr(cfg, k)
        if path and not (k == "model" and path in PRESETS):
            cfg = replace(cfg, **{k: _absolute(path)})
    return replace(cfg, teacher=[_absolute(t) for t in cfg.teacher])


def _absolute(path: str) -> str:
    """path made absolute if it exists (a missing one stays as given, for its error to name it so)."""
    return str(Path(path).resolve()) if Path(path).exists() else path


def model_spec(cfg: TrainConfig, labels: LabelSet | None = None) -> ModelSpec:
    """cfg's model spec (preset or file, with its overrides), one output per emotion of its label set
    (`labels`, else cfg.labels'); a num_classes that disagrees with the label set is a ConfigError.
    With --labels data and no labels yet (the data not read), the spec's own num_classes stays."""
    spec = resolve_spec(cfg.model, cfg.overrides)
    if labels is None and cfg.labels == DATA:
        return spec
    return _for_labels(spec, labels or label_set(cfg.labels), cfg)


def _for_labels(spec: ModelSpec, labels: LabelSet, cfg: TrainConfig) -> ModelSpec:
    """spec.for_labels(labels), a num_classes that disagrees named where cfg gave it, as a spec file's other problems
    are (resolve_spec): "num_classes must be 5 ..." named neither the spec file nor --set."""
    if "num_classes" in cfg.overrides:
        return spec.for_labels(labels, "--set num_classes")
    try:
        return spec.for_labels(labels)
    except ConfigError as e:
        if not is_spec_file(cfg.model):
            raise
        raise ConfigError(f"{cfg.model}: {e}") from None


def check_init_from(init_from: str | None) -> None:
    """A ConfigError where --init-from names no file."""
    if init_from and not Path(bundled.file_of(init_from, "checkpoint")).exists():
        raise ConfigError(f"--init-from {init_from}: no such file; give a state_dict (.pth) or a ferkit checkpoint (.pt)")


def check_freeze(cfg: TrainConfig, spec: ModelSpec) -> None:
    """A ConfigError where --freeze asks for more layers than spec has before its head (checked before the data are read)."""
    if cfg.freeze > spec.stages():
        raise ConfigError(f"--freeze {cfg.freeze}: {cfg.model} has {spec.stages()} layers before its head to freeze; "
                          f"give 1..{spec.stages()}, or -1 for all")


def load_data(cfg: TrainConfig, spec: ModelSpec) -> FerData:
    """cfg's data read for spec's input (size, channels), with cfg's class names and drawn split."""
    return load_fer(cfg.data, cfg.skip_bad_rows, **reading_for(spec, cfg.to_dict()))


def check_input(data: FerData, spec: ModelSpec) -> None:
    """A ConfigError unless data's faces are the model's input (data read elsewhere, e.g. passed to fit)."""
    if data.images.shape[1:] != spec.face_shape:
        raise ConfigError(f"{data.source}: its faces are {'x'.join(map(str, data.images.shape[1:]))}, but the model takes "
                          f"{'x'.join(map(str, spec.face_shape))} (in_size {spec.in_size}, channels {spec.channels}); read "
                          "the data for the model (train.load_data) or change the spec")


def fit(cfg: TrainConfig, out_dir: str | Path, resume: bool = False, data: FerData | None = None, progress: bool = True,
        go_on: str | None = None) -> list[dict]:
    """Train cfg.model on cfg.data; write the run folder; return the history (list of per-epoch dicts).

    With resume=True, continue where the run in out_dir stopped (from its last.pt).
    A file of the run that cannot be written (a full disk) is an OutputError saying what to do, then
    go_on (default: `ferkit train --resume`, or start again).
    Under torchrun, each process trains on its shard of every epoch (see distributed.py)."""
    with ExitStack() as held:  # the run folder's lock, from the checks to the last checkpoint
        return _fit(cfg, out_dir, resume, data, progress, held, go_on)


def _fit(cfg: TrainConfig, out_dir: str | Path, resume: bool, data: FerData | None, progress: bool, held: ExitStack,
         go_on: str | None = None) -> list[dict]:
    if resume:  # a run resumes where it is: another location is no fix
        out = check_output(out_dir, "--resume", folder=True, fix="copy the run folder and resume the copy")
    else:
        out = check_output(out_dir, "--out", folder=True)
    # a bundled model's name: its int8 graph teaches (the fastest teacher, bench_teacher.py), its checkpoint initialises
    cfg = replace(cfg, teacher=[bundled.file_of(t, "int8") for t in cfg.teacher],
                  init_from=cfg.init_from and bundled.file_of(cfg.init_from, "checkpoint"))
    check_not_student(cfg.teacher, out)
    dist = distributed.setup(cfg.device)
    device = dist.device
    info = log.info if dist.main else (lambda *a: None)  # rank 0 speaks for the job
    progress = progress and dist.main
    if resume and cfg.precision == "bf16" and not fast_bf16(device):  # begun on a machine with native bf16
        info(f"--resume {out}: the run trained in bf16, which {device} only emulates (about 10x slower); it goes on in fp32")
        cfg = replace(cfg, precision="fp32")
    cfg = replace(cfg, precision=resolve_precision(cfg.precision, device))  # recorded as resolved in config.json
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if resume and not (out / LAST).exists():
        raise FerkitError(f"--resume {out}: no last.pt there, so nothing to resume; start a new run instead")
    if resume and (in_the_way := _best_in_the_way(out)):  # now, not when an epoch that improves is saved
        raise FerkitError(f"--resume {out}: {in_the_way}")
    if not resume and (out / LAST).exists():  # a fresh start would overwrite that run's checkpoints and history
        raise FerkitError(f"--out {out}: it holds a run already (its last.pt); continue it with 'ferkit train --resume "
                          f"{shell_word(out)}', or give another --out (delete the folder to start it over)")
    if not resume and (broken := _broken_last(out)):  # checked now, not an epoch later when last.pt is saved through it
        raise FerkitError(f"--out {out}: {broken}; point the link at the run's {LAST} and continue it with 'ferkit train "
                          f"--resume {shell_word(out)}', or give another --out")
    if not resume and (kept := _kept(out)):  # last.pt deleted
        best = from_best(out)
        raise FerkitError(f"--out {out}: it holds a run's {' and '.join(kept)} but no last.pt (deleted, or the run was "
                          "killed while saving its first epoch), so it cannot be resumed and a new run would replace them; "
                          "give another --out (delete the folder to start it over)" + (f"; its {best}" if best else ""))
    if dist.main:  # the one process that writes the folder
        held.enter_context(_sole_writer(out, "--resume" if resume else "--out"))
    info(f"training {cfg.model} for {cfg.epochs} epochs -> {out}")
    ckpt = read_last(out) if resume else None
    if ckpt is None:  # before the data are read
        check_init_from(cfg.init_from)
    if ckpt is not None:
        _check_resume(ckpt, cfg, out)
        _say_spec_file_changed(ckpt, cfg)
    # the spec before the data (a bad one is refused before any is read); with --labels data its width comes after
    spec = ModelSpec.from_dict(ckpt["spec"]) if ckpt is not None else model_spec(cfg)
    if device.type == "cpu":
        _check_memory(spec, cfg)
    check_freeze(cfg, spec)
    if cfg.backbone_lr is not None and cfg.freeze in (-1, spec.stages()):  # no backbone parameter trains
        log.warning(f"--backbone-lr {cfg.backbone_lr:g}: ignored with --freeze {cfg.freeze}, which freezes every layer "
                    "before the head: only the head trains, at --lr")

    dist.rank0_first()  # rank 0 fills the data and HOG caches; the other ranks then read them
    read_here = data is None  # (data given are read by the caller, who answers for their split: search's folds)
    if data is None:
        data = load_data(cfg, spec)
        cfg = replace(cfg, data=data.source)
    check_input(data, spec)
    labels = label_set(cfg.labels, data.names)
    if ckpt is not None and labels.emotions != labels_of(ckpt):  # the head's outputs would change meaning
        raise DataError(f"--resume {out}: the data's classes are now {', '.join(labels.emotions)}; the run trained on "
                        f"{', '.join(labels_of(ckpt))} (in that order). Put the data (and --label-names) back as they "
                        "were to resume, or start a new run")
    spec = _for_labels(spec, labels, cfg)
    cfg = absolute_paths(cfg)
    info(f"data: {data.source} (" + ", ".join(f"{k} {v}" for k, v in data.counts().items()) + ")")
    if data.skipped:
        first = f" (first: {data.problems[0]})" if data.problems else ""  # (a cache written before 2026-12-06 has none)
        info(f"skipped {data.skipped} bad rows/images of {data.source}{first}")
    if read_here and dist.main:  # (data given are the caller's to check: search's folds are cut from the training split)
        say_leaked(data)
    rows = labels.annotations(data, cfg.labels_file)
    votes = labels.reads_votes(data)
    mapping = None if votes else describe_mapping(data.names, labels, data.labels)
    if mapping:
        info(mapping)
    train, val, mean = split_batches(data, cfg, spec, ckpt["mean"].numpy() if ckpt is not None else None, labels, rows)
    if votes:  # the label mode decides which faces train: say how many
        info(f"{labels.title} labels ({cfg.label_mode}): {len(train)} training faces, {len(val) if val is not None else 0} "
             "PublicTest faces with an evaluation label")
    dist.rank0_done()
    if val is None and not data.has("val"):
        info(f"{data.source}: no PublicTest (val) rows or val/ images; the best checkpoint is the last epoch's")
    if not votes and (cfg.labels_file or cfg.label_mode != TrainConfig.label_mode):
        log.warning(f"--labels-file and --label-mode are for FER+ votes of FER2013's rows (--labels ferplus); ignored with "
                    f"--labels {labels.name} on {data.source}")
    # options that do nothing here (given, not the defaults): a split is drawn only for data that give none, and
    # only with some val or test faces to draw (the seed alone is unused with both fractions 0); a teacher's only with one
    given = [f for f in ("split_seed", "val_fraction", "test_fraction") if getattr(cfg, f) != getattr(TrainConfig, f)]
    unused = given if data.own_split else [] if cfg.val_fraction or cfg.test_fraction else [f for f in given if f == "split_seed"]
    if read_here and unused:
        why = ("gives its own split (they draw one for data that give none)" if data.own_split else
               "gets no split drawn with --val-fraction 0 and --test-fraction 0 (every face trains)")
        log.warning(f"{', '.join(map(flag, unused))}: ignored; {data.source} {why}")
    unused = [f for f in ("distill", "distill_temp", "teacher_tta") if getattr(cfg, f) != getattr(TrainConfig, f)]
    if unused and not cfg.teacher:
        log.warning(f"{', '.join(map(flag, unused))}: ignored without --teacher (they set how a teacher's answers are distilled)")
    if dist.world > 1:
        info(dist.describe(cfg.batch_size))

    torch.manual_seed(cfg.seed)
    # (under a memory limit the allocator refuses what MemAvailable promised _check_memory: a traceback)
    building = f"use fewer filters, units or layers (it has ~{spec.parameters():,} weights)"
    with out_of_memory_said("building the model", building):
        model = create_model(spec)
    if cfg.init_from and ckpt is None:  # a resumed run has its own weights in last.pt
        init_from(model, cfg.init_from, info, labels.emotions)
    freeze(model, cfg.freeze, info)  # resumed too: the optimizer's groups must be the ones last.pt holds
    model = prepare(model, device)
    teachers = [load_teacher(t, mean, labels.emotions, device, cfg.precision) for t in cfg.teacher]
    opt = _optimizer(model, cfg)
    with out_of_memory_said("copying the model for --ema", building):
        ema = weight_average(model, cfg.ema)
    validated = ema.module if ema is not None else model  # evaluated, and saved as best.pt
    steps_per_epoch = len(batch_starts(dist.shard_size(len(train)), cfg.batch_size))
    sched = _scheduler(opt, cfg, cfg.epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(cfg.seed)  # data order and augmentation
    history, iter_loss, best_acc, start_epoch = [], [], None, 1  # best_acc: None until a validation score exists
    if ckpt is not None:
        last = out / LAST
        start_lrs = sched.get_last_lr()  # the new schedule's first rates, which loading the optimizer replaces
        decays = [group["weight_decay"] for group in opt.param_groups]  # cfg's l2, which it replaces too
        model.load_state_dict(ckpt["state_dict"])
        with _restoring(last, "optimizer state"):
            opt.load_state_dict(ckpt["optimizer"])
            _check_optimizer_state(opt)
        for group, decay in zip(opt.param_groups, decays):  # (an l2 edited into config.json was recorded, never applied)
            group["weight_decay"] = decay
        if ema is not None:
            with _restoring(last, "weight average (--ema)"):
                ema.load_state_dict(ckpt["ema"])
        replan = _replan(ckpt, cfg, dist.world)
        if replan is None:
            with _restoring(last, "schedule state"):
                sched.load_state_dict(ckpt["scheduler"])
        else:  # replay the new schedule up to where it stopped
            info(f"schedule re-planned for {replan}")
            for group, lr in zip(opt.param_groups, start_lrs):  # cosine and step multiply the current rate: replay from the first
                group["lr"] = lr
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()"
                for _ in range(ckpt["epoch"] * steps_per_epoch):
                    sched.step()
        with _restoring(last, "random state"):
            gen.set_state(ckpt["rng"])
            if "rng_states" in ckpt:
                set_rng_states(ckpt["rng_states"])
        if "rng_states" not in ckpt:
            log.info("this checkpoint predates saved random states: the resumed run continues, but its dropout draws "
                     "differ from an uninterrupted run's")
        history, iter_loss = list(ckpt["history"]), list(ckpt["iter_loss"])
        best_acc = ckpt["best_acc"] if val is not None else None  # (old checkpoints stored an epoch number without validation)
        if dist.main and (why := _best_gone(out)):  # deleted or damaged: else the run may end with no usable best.pt
            best_acc = _best_again(ckpt, best_acc, validated, out, go_on, why)
        start_epoch = ckpt["epoch"] + 1
        so_far = f"best val acc so far {best_acc:.4f}" if best_acc is not None else "no validation split"
        if start_epoch > cfg.epochs:
            info(f"{out}: the run has trained all its {cfg.epochs} epochs ({so_far}); to train it longer, "
                 "resume it with a larger --epochs")
        else:
            info(f"resuming {out} at epoch {start_epoch}/{cfg.epochs} ({so_far})")
    if dist.main:
        with _saving(out / CONFIG, out, go_on):  # (the folder is _sole_writer's)
            atomic_write(out / CONFIG, json.dumps({**cfg.to_dict(), "spec": spec.to_dict()}, indent=1))
            if ckpt is not None:  # the history as last.pt has it (a kill between the two writes leaves them apart)
                write_history(history, iter_loss, out)
    net = dist.wrap(model)  # trains; `model` (the same weights) is saved to resume from

    bar = None
    if progress and start_epoch <= cfg.epochs:
        from tqdm import tqdm

        bar = tqdm(total=(cfg.epochs - start_epoch + 1) * steps_per_epoch, unit="it", dynamic_ncols=True)
    for epoch in range(start_epoch, cfg.epochs + 1):
        t0 = time.monotonic()  # not the wall clock: set back mid-epoch (NTP, a resumed VM), it wrote a negative time
        if bar is not None:
            bar.set_description(f"epoch {epoch}/{cfg.epochs}")
        lr = opt.param_groups[0]["lr"]
        shard, shard_gen = dist.epoch(train, gen)
        validate = val is not None and dist.main
        then = f"; then continue with 'ferkit train --resume {shell_word(out)}'" if (out / LAST).exists() else ""
        with out_of_memory_said(f"in epoch {epoch}", f"lower --batch-size (now {cfg.batch_size}) or the model's size "
                                                     f"(in_size, filters){then}"):
            tr_loss, tr_acc, losses = dist.average(*train_one_epoch(net, shard, opt, sched, cfg, shard_gen, device, bar, teachers, ema))
            if bar is not None and val is not None:
                bar.set_description(f"epoch {epoch}/{cfg.epochs} validating")
            # in batches of the training's size: without gradients they need less memory than its batches did
            ev = (evaluate(validated, val, device, cfg.batch_size, tta=cfg.tta, precision=cfg.precision) if validate
                  else {"loss": float("nan"), "acc": float("nan")})
        row = dict(epoch=epoch, train_loss=round(tr_loss, 5), train_acc=round(tr_acc, 5), val_loss=round(ev["loss"], 5),
                   val_acc=round(ev["acc"], 5), lr=lr, seconds=round(time.monotonic() - t0, 2))
        history.append(row)
        iter_loss += losses
        improved = val is None or best_acc is None or ev["acc"] > best_acc  # without validation, best = the last epoch
        if improved and val is not None:
            best_acc = ev["acc"]
        if dist.main:
            ckpt = dict(epoch=epoch, config=cfg.to_dict(), spec=spec.to_dict(), labels=list(labels.emotions), state_dict=model.state_dict(),
                        optimizer=opt.state_dict(), scheduler=sched.state_dict(), best_acc=best_acc, mean=torch.from_numpy(mean),
                        history=history, iter_loss=iter_loss, rng=gen.get_state(), rng_states=rng_states(), world_size=dist.world)
            if ema is not None:
                ckpt["ema"] = ema.state_dict()
            # best.pt first: the last.pt that claims this epoch's best_acc then always has its best.pt;
            # best.pt is for inference: no optimizer or scheduler state (a third of last.pt's size with Adam)
            if improved:
                best = {k: v for k, v in ckpt.items() if k != "ema"}
                with _saving(out / BEST, out, go_on):
                    save_checkpoint({**best, "state_dict": validated.state_dict(), "optimizer": {}, "scheduler": {}}, out / BEST)
            with _saving(out / LAST, out, go_on):
                save_checkpoint(ckpt, out / LAST)
            with _saving(out / HISTORY_JSON, out, go_on):
                write_history(history, iter_loss, out)  # after the checkpoint that holds this epoch
        msg = (f"epoch {epoch}/{cfg.epochs}  train loss {tr_loss:.4f} acc {tr_acc:.4f}  "
               f"val loss {ev['loss']:.4f} acc {ev['acc']:.4f}  lr {lr:.2e}  {row['seconds']:.0f}s")
        (bar.write if bar is not None else info)(msg)
    if bar is not None:
        bar.close()
    dist.barrier()  # every rank returns once rank 0 has written the last checkpoint
    return history
