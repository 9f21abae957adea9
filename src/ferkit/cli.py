"""The `ferkit` command: thin sub-commands that parse flags, call the library and print.

User errors (FerkitError) print `error: ...` (one line, or one block: its further lines indented) and exit 2,
never a traceback. Outputs (--out, --json, --csv, --annotate, --onnx, --pt) are checked before the work starts
(files.check_output) and written atomically (files.write_output: a full disk is one line). The library's progress
lines (logging, INFO) are printed plainly on stdout.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import typing
from dataclasses import MISSING, fields
from pathlib import Path

from . import __version__, precisions, runs
from .config import (
    MAX_STEPS,
    PATH_FIELDS,
    TrainConfig,
    base_type,
    choices,
    flag,
    full_spec,
    is_spec_file,
    not_a_spec,
    trained_model_kind,
)
from .errors import ConfigError, FerkitError, OutputError, needs_extra, out_of_memory_said, quoted, shell_word
from .files import (
    VIDEO_EXTS,
    check_default_folder,
    check_not_input,
    check_output,
    check_outputs,
    kind_of_file,
    missing_folders,
    output_errors,
    remove_empty,
    write_output,
)
from .settings import BACKEND_HELP, MODEL_HELP, PRECISION_HELP, TTA_HELP, Settings

COMMANDS = {}  # name -> (help, add_arguments(parser), run(args)); filled by @command


def command(name: str, help: str, add_arguments=lambda p: None):
    """Register run(args) as sub-command `name`, with add_arguments(parser) declaring its flags."""

    def register(run):
        COMMANDS[name] = (help, add_arguments, run)
        return run

    return register


def takes_back_folders(*flags: str):
    """A command's decorator: the folders that it makes for its outputs (the values of `flags`, e.g.
    "json": a file's missing parent folders, which check_output makes; a folder's too, with the folder
    itself, which its first write makes) go again, those still empty, when the command ends: refused,
    its writes failed, stopped (Ctrl-C), or done with nothing written there, so that it leaves no
    empty folder behind (a report of a run that is not there left the new folders of its --out; a
    plot on a full disk, its empty --out; a predict whose every annotated copy failed, a warning
    each, its empty --annotate)."""

    def wrap(run):
        @functools.wraps(run)
        def refusable(args):
            # (a file's own path is never a folder to remove: rmdir leaves a file alone)
            made = missing_folders([Path(f) for f in (getattr(args, flag) for flag in flags) if f])
            try:
                done = run(args)
            except (FerkitError, KeyboardInterrupt):  # (a bug's traceback leaves them, as they were when it struck)
                remove_empty(made)
                raise
            remove_empty(made)
            return done

        return refusable

    return wrap


def _data_args(p, names_default: str = "labels.txt beside the data, else its class folders' names", data_default: str = ""):
    p.add_argument("--data", help="FER2013 CSV (.csv/.csv.gz), image folder (ROOT/<class>/*, ROOT/{train,val,test}/<class>/*) "
                                  f"or image list (CSV/TSV of path,label[,split]); default {data_default}$FERKIT_DATA or "
                                  "../shared/data/fer2013/fer2013.csv.gz")
    p.add_argument("--skip-bad-rows", action="store_true", default=None, help="skip malformed rows/images and report how many")
    p.add_argument("--label-names", help=f"the data's class names in label order: a file (one a line) or a comma list (default: {names_default})")


def _parse_set(items: list[str] | None) -> dict:
    from .config import load_yaml

    out = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise FerkitError(f"--set {item!r}: expected FIELD=VALUE, e.g. --set fcs.0.units=1024")
        out.pop(key.strip(), None)  # a field set again moves to its last place: the --sets apply left to right
        try:
            out[key.strip()] = load_yaml(value)
        except Exception as e:  # yaml.YAMLError
            raise FerkitError(f"--set {item!r}: the value is not valid YAML ({e})") from None
    return out


# ---------------------------------------------------------------- models


@command("models", "list the model presets (with the training extra) and the bundled models, with multiply-adds per image")
def cmd_models(args):
    from .predict import describe_default

    try:  # the presets are nets, built by torch; the bundled models are the manifest, read without it
        _print_presets()
    except ModuleNotFoundError as e:  # a light install: one line on what is missing, then what it has
        err = needs_extra(e, "listing the presets")
        if err is e:
            raise
        print(f"{err}\n")
    _print_bundled()
    print(f"\n{describe_default()}")


def _print_presets():
    from .model import PRESETS, count_macs, count_params, create_model
    from .recipes import recipe

    print(f"{'preset':<12}{'params':>12}{'MACs/image':>14}{'epochs':>8}{'lr':>9}{'l2':>9}  about")
    for name, pr in PRESETS.items():
        m, r = create_model(name), recipe(name)
        print(f"{name:<12}{count_params(m):>12,}{count_macs(m):>14,}{r['epochs']:>8}{r['lr']:>9.0e}{r['l2']:>9.0e}  {pr.about}")
    print()


def _print_bundled():
    """The bundled models from the manifest (bundled.py): no torch, so a light install lists them too."""
    from .bundled import MODELS
    from .predict import BUNDLED, DEFAULT_MODEL

    print(f"{'bundled':<14}{'MACs/image':>12}  {'PublicTest f16 / int8':<23}{'net':<32}emotions (use with --model NAME)")
    for name, m in MODELS.items():
        if not BUNDLED[name].exists():
            print(f"{name:<14}not in this install ({BUNDLED[name].name} is missing)")
            continue
        acc = f"{m.accuracy['float16']:.2f}% / {m.accuracy['int8']:.2f}%"
        default = "  (default)" if name == DEFAULT_MODEL else ""
        print(f"{name:<14}{m.macs:>12,}  {acc:<23}{m.net:<32}{', '.join(m.emotions)}{default}")


# ---------------------------------------------------------------- train


# Every TrainConfig field is a flag of `ferkit train` and `ferkit search` (add_field_flags), so the
# two share one definition; overrides has --set instead: a spec path at a time.


class _Extend(argparse.Action):
    """--flag A --flag B,C gives [A, B, C]: a repeatable flag whose values may also be comma lists."""

    def __call__(self, parser, namespace, values, option_string=None):
        items = [v.strip() for v in values.split(",")]
        if not all(items):  # `--teacher ,` or `a,,b`: an empty name; dropped, it trained without a teacher
            parser.error(f"{option_string} {values!r}: an empty name in the list; give PATH or PATH,PATH")
        setattr(namespace, self.dest, (getattr(namespace, self.dest) or []) + items)


def _field_help(f, preset_fields=()) -> str:
    """A field's help and its default: the preset's where a recipe sets the field, else the field's own."""
    text = f.metadata["help"].replace("%", "%%")  # argparse %-formats help texts
    if f.name in preset_fields:
        return f"{text} (default: the preset's)"
    if f.default is None or f.default is MISSING:  # the help says what none means; [] and {} go without saying
        return text
    return f"{text} (default {({True: 'on', False: 'off'}[f.default] if isinstance(f.default, bool) else f.default)})"


def add_field_flags(p, cls, preset_fields=(), skip=()):
    """One flag per field of dataclass cls (TrainConfig, serve's Settings): its name from the field's,
    its type and choices from the annotation, its help from option(default, help). Each flag defaults
    to None, so that what it would override (a preset's recipe, a --config file, the field's default)
    applies where it is not given."""
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if f.name in skip:
            continue
        kind, help = base_type(hints[f.name]), _field_help(f, preset_fields)
        if kind is bool:
            p.add_argument(flag(f.name), action=argparse.BooleanOptionalAction, default=None, help=help)
        elif kind is list:
            p.add_argument(flag(f.name), action=_Extend, metavar=f.name.upper(), help=help)
        else:  # a bad choice is argparse's one-line error naming the flag, before any work
            p.add_argument(flag(f.name), type=kind, choices=choices(hints[f.name]), help=help)


def given(args, cls) -> dict:
    """The fields of dataclass cls that were given as flags."""
    return {f.name: getattr(args, f.name) for f in fields(cls) if getattr(args, f.name, None) is not None}


def add_train_flags(p):
    """The TrainConfig flags, shared by `train` and `search`."""
    from .recipes import RECIPES

    p.add_argument("--config", help="JSON/YAML training config (e.g. best.yaml from `ferkit search`); flags override it")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="override a model spec field, e.g. --set fcs.0.units=1024 (repeatable, applied left to right; layers count from 0)")
    add_field_flags(p, TrainConfig, set().union(*RECIPES.values()), skip=("overrides",))


def config_from_args(args):
    """TrainConfig from --config file and flags (flags win); preset defaults fill the rest."""
    from .config import model_problem, named_in_file, problem, read_file
    from .train import model_spec, resolve_config

    base = read_file(args.config) if args.config else {}
    recorded = base.pop("spec", None)  # a run's config.json records the spec its model and overrides resolve to
    flags = given(args, TrainConfig)
    if args.config:
        _check_paths_beside(args.config, base, flags)
    sets = _parse_set(args.set)
    if sets:
        saved = base.get("overrides") or {}  # (a YAML key with nothing after it is null)
        if not isinstance(saved, dict):
            raise ConfigError(problem(f"{args.config}: overrides", "a mapping of dotted model spec fields to values, "
                                      "such as {fcs.0.units: 1024}, for --set to add to", saved))
        flags["overrides"] = {**{k: v for k, v in saved.items() if k not in sets}, **sets}  # the file's, then the flags'
    if args.command == "search":  # (TrainConfig's own problem with a trained model gives train's ways on from it)
        model = flags.get("model", base.get("model"))
        if why := model_problem(model, "search"):
            raise ConfigError(why if "model" in flags else named_in_file(why, args.config, ["model"]))
    cfg = resolve_config(base=base, source=args.config, **flags)
    try:
        spec = model_spec(cfg)  # a bad --set, or a num_classes that disagrees with --labels, is reported now, before any work
    except ConfigError as e:  # a run's spec file moved or deleted since (the command from_best suggests then failed)
        if not (isinstance(recorded, dict) and "model" not in flags and is_spec_file(cfg.model) and not Path(cfg.model).is_file()):
            raise
        raise ConfigError(f"--config {args.config}: its model {e}; the net the run trained is recorded there as "
                          "its \"spec\": save that as a JSON file and give it with --model FILE (or put the spec file back)") from None
    if isinstance(recorded, dict) and _layers(recorded) != _layers(spec.to_dict()):  # edited, or the spec file since
        print(f"note: {args.config}: its spec is the record of a run's net, not used: the net is model ({cfg.model}) with "
              "overrides; to train the recorded net, save its spec as a JSON file and give that as model")
    return cfg


CONFIG_PATHS = (*PATH_FIELDS, "teacher")  # the TrainConfig fields that name files or folders (teacher: a list of them)


def _check_paths_beside(config: str, base: dict, flags: dict) -> None:
    """A ConfigError where a relative path of the --config file (one no flag replaces) names nothing here but a file
    or folder beside the config. Its paths are read from the current folder, as the flags' are (configs/example-train.yaml
    names configs/example-spec.yaml), and `model: spec.yaml` beside it was "spec.yaml: cannot read (No such file or
    directory)", a `data: fer.csv` beside it FER2013's download advice; neither named the config."""
    folder = Path(config).parent
    for name in (n for n in CONFIG_PATHS if n not in flags):
        for value in base.get(name) if isinstance(base.get(name), list) else [base.get(name)]:
            if not isinstance(value, str) or not value.strip() or (name == "model" and not is_spec_file(value)):
                continue  # (a preset's name; a wrong type is the config's check's to report)
            if os.path.isabs(value) or os.path.exists(value) or not os.path.exists(folder / value):
                continue
            raise ConfigError(f"{config}: {name} {value}: not found from the current folder ({Path.cwd()}), but there is "
                              f"{folder / value} beside the config; a config's paths are read from the current folder, as "
                              f"the flags' are: write {name}: {folder / value} in it, or give {flag(name)} {folder / value}")


def _layers(spec: dict) -> dict:
    """A spec's layers with the defaults it leaves out (an older ferkit recorded fewer fields), without
    its number of outputs (which --labels data sets from the data)."""
    return {k: v for k, v in full_spec(spec).items() if k != "num_classes"}


def _train_args(p):
    add_train_flags(p)
    p.add_argument("--out", help="run folder (default runs/<model>-<time>)")
    p.add_argument("--resume", metavar="DIR", help="continue the interrupted run in DIR with its saved config (and --epochs, "
                   "--data where the data moved, --device and --threads, if given)")
    p.add_argument("--quiet", action="store_true", help="one log line per epoch, no progress bar")


@command("train", "train a model on FER2013 or one's own image data; writes checkpoints and history to --out", _train_args)
def cmd_train(args):
    from .train import RESUME_CHANGES, fit, resume_config

    if args.resume:
        cfg, out = resume_config(args.resume, **{k: getattr(args, k) for k in RESUME_CHANGES}), Path(args.resume)
        ignored = [flag(name) for name in given(args, TrainConfig) if name not in RESUME_CHANGES]
        if ignored or args.config or args.model or args.set or args.out:
            print(f"note: --resume continues with {out / runs.CONFIG}; ignoring "
                  f"{', '.join(ignored + (['--out'] if args.out else [])) or 'the other training flags'}")
    else:
        cfg = config_from_args(args)
        out = check_output(args.out or _default_out(cfg), "--out", folder=True)
        check_not_input(out, "--out", [_data_read(cfg.data)])  # a run inside an image folder is read with it
    go_on = f"continue from its last whole epoch with 'ferkit train --resume {shell_word(out)}'"
    try:
        history = fit(cfg, out, resume=bool(args.resume), progress=not args.quiet)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM mid-epoch: last.pt still holds the last whole one
        if (out / runs.LAST).exists():
            raise KeyboardInterrupt(f"({go_on})") from None
        raise
    except RuntimeError as e:  # under torchrun: another rank died, and this one's collective failed (a gloo traceback)
        from .distributed import RankError, lost_peer

        if not lost_peer(e):
            raise
        raise RankError("another process of this distributed job stopped (killed, crashed or out of memory; its own "
                        "error, if it printed one, is above), so this one cannot go on; "
                        + (go_on if (out / runs.LAST).exists() else "start the run again")) from None
    top = runs.best_row(history)  # None without a validation split
    if top:  # best.pt's epoch, not the history's best: a resume that found best.pt deleted or damaged wrote it from a later one
        from .checkpoint import read_record

        best = read_record(out / runs.BEST)
        if best.ckpt is None:  # (the run's work is done and its last.pt whole: said, not exit 2)
            # unreadable: its error says to give ferkit's user read access (check_regular_file); a resume keeps it
            # missing or damaged: a resume writes it again from last.pt's epoch (train._best_gone, _best_again); a missing
            # one's error is read_checkpoint's "no such checkpoint; give a .pt file ...", advice that does not fit here
            way = ("a resume keeps it: its weights may be whole" if best.trouble == "unreadable" else
                   f"{'a damaged one' if best.trouble == 'damaged' else 'it'} is written again from {runs.LAST}'s epoch by "
                   f"'ferkit train --resume {shell_word(out)}'")
            why = f"{out / runs.BEST} is missing" if best.trouble == "missing" else best.error
            print(f"done: the history's best val acc is {top['val_acc']:.4f} at epoch {top['epoch']}, but {why} ({way}); "
                  f"the last epoch is in {out / runs.LAST}")
            return
        epoch, score = best.ckpt.get("epoch", "?"), best.acc
        gone = runs.lost_best(top, epoch, score)
        print(f"done: best val acc {'?' if score is None else f'{score:.4f}'} at epoch {epoch}{f' ({gone})' if gone else ''}; checkpoints in "
              f"{out / runs.BEST} and {out / runs.LAST}")
    elif history:
        print(f"done: no validation split, so best.pt is the last epoch's; checkpoints in {out / runs.BEST} and {out / runs.LAST}")


def _default_out(cfg) -> str:
    """runs/<model>-<time>. Under torchrun every rank takes rank 0's name: each one's own clock may read a
    second later, and the ranks then wrote to two folders."""
    from .distributed import setup

    return setup(cfg.device).rank0s(f"runs/{Path(cfg.model).stem}-{time.strftime('%Y%m%d-%H%M%S')}")


# ---------------------------------------------------------------- evaluate


def _evaluate_args(p):
    p.add_argument("checkpoint", help="a .pt file from `ferkit train` (or its run folder, meaning best.pt), an .onnx file from "
                                      "`ferkit export`, or a bundled model's name (see `ferkit models`)")
    p.add_argument("--split", choices=["train", "val", "test", "all"],
                   help="default: test if the file has PrivateTest rows (a drawn test split for images without one), else "
                        "val; all: every image, e.g. one's own photos for a model not trained on them")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None, help="average with the mirrored face (default: as trained)")
    p.add_argument("--json", metavar="FILE", help="write the metrics here (default: metrics-<split>.json beside a run's best.pt, "
                                                  "metrics-<file>-<split>.json beside another file (in the current folder for a "
                                                  "bundled model), with -<data> added where that holds a score on other data)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", help="auto | fp32 | bf16 (autocast); auto = bf16 where the device runs it fast "
                                                       "(an .onnx file: as exported; int8: evaluate an int8 graph)")
    p.add_argument("--labels-file", help="FER+ vote file for a FER+ model (default: fer2013new.csv beside --data)")
    _data_args(p, "as the checkpoint was trained, else labels.txt or the class folders", "the data it trained on, else ")


def check_text_output(out: Path, flag: str, what: str, suffix: str) -> None:
    """A FerkitError where a command's text output (metrics JSON, predictions CSV, a report's HTML)
    would replace a model, a photo, a video or a file of a training run (a mistyped name lost a
    checkpoint). After check_output, and check_not_input where the command reads such files."""
    if kind := kind_of_file(out):
        raise FerkitError(f"{flag} {out}: names {kind} file; give {what} a {suffix} name")
    runs.check_not_run_file(out, flag)


@command("evaluate", "accuracy, per-class accuracy and confusion matrix of a checkpoint on a split", _evaluate_args)
@takes_back_folders("json")
def cmd_evaluate(args):
    from .checkpoint import load_checkpoint
    from .data import NO_SPLIT, OWN_SPLITS, load_fer, reading_for, recorded_reading
    from .labels import for_emotions
    from .metrics import evaluate_split, format_report
    from .predict import BUNDLED, WEIGHTS, Predictor, int8_file, is_onnx_file

    # everything about the checkpoint and the outputs is checked before the data (seconds) is loaded
    if args.json:  # the name first: check_output makes missing folders
        check_text_output(Path(args.json), "--json", "the metrics", ".json")
        check_output(args.json, "--json")
    ck = Path(_checkpoint_path(args.checkpoint))
    if args.precision == "int8" and not is_onnx_file(ck):  # int8 exists only as an exported graph
        from .onnx_export import onnx_refusal

        graph = int8_file(args.checkpoint) if args.checkpoint in BUNDLED else None
        if graph and graph.exists():
            way = f"is a checkpoint; evaluate its shipped graph: ferkit evaluate {shell_word(graph)}"
        elif why := onnx_refusal(load_checkpoint(ck)):  # (the export below refuses it: that advice led nowhere)
            way = f"{why}; evaluate it on torch with --precision fp32 or bf16 (or leave --precision out)"
        else:
            way = (f"is a checkpoint; export one (ferkit export {shell_word(args.checkpoint)} --onnx model.int8.onnx --int8) "
                   "and evaluate that file")
        raise FerkitError(f"--precision int8: int8 models are exported ONNX graphs, and {args.checkpoint} {way}")
    if is_onnx_file(ck):  # an exported graph, scored as users run it (the mirror as --tta says, where not inside)
        clf = Predictor(ck, backend="onnx", device=args.device, precision=args.precision, tta=args.tta)
    else:
        clf = load_checkpoint(ck, args.device, args.precision)
    # Metrics go beside the checkpoint (its run folder), except for the bundled models: ferkit's
    # own folder is not the user's, so theirs go to the current folder.
    folder = ck if ck.is_dir() else ck.parent
    bundled = folder.resolve() == WEIGHTS
    if not args.json:  # the default place: the folder it will be written to (its name needs the split)
        check_default_folder(Path(".") if bundled else folder, "the metrics", "--json")
    # read as the model's training read it: its input size and channels, class names and drawn split
    if is_onnx_file(ck):  # an exported graph: its own input (size, channels); the names and split its metadata records
        from .runtime import onnx_reading

        reading = {"size": clf.size, "channels": clf.channels, **recorded_reading(onnx_reading(clf.session), args.label_names)}
    else:
        reading = reading_for(clf.spec, clf.meta.get("config"), args.label_names)
    if args.split == "all":  # no split drawn (a few images a class could not be split)
        reading.update(NO_SPLIT)
    data_path = args.data or (None if is_onnx_file(ck) else runs.trained_on(clf.meta.get("config")))
    data = load_fer(data_path, bool(args.skip_bad_rows), **reading,
                    split_fix=f"score every image with --split all (no split drawn), or {OWN_SPLITS}")
    if data.skipped:
        print(f"skipped {data.skipped} bad rows of {data.source}")
    split = args.split or ("test" if data.has("test") else "val")
    own = not bundled and (ck.is_dir() or ck.name == runs.BEST)  # the run's best.pt; another file's score gets its own name
    out = Path(args.json) if args.json else runs.metrics_path(Path(".") if bundled else folder, split, data.source,
                                                              None if own else ck.name)
    print(f"evaluating {args.checkpoint} on {'all' if split == 'all' else f'the {split}'} faces of {data.source} "
          f"({clf.precision}) ...", flush=True)
    votes = for_emotions(clf.labels).reads_votes(data)
    labels_file = args.labels_file
    if labels_file and not votes:  # (it was ignored without a word)
        print(f"note: --labels-file {labels_file}: FER+'s votes score a FER+ model on FER2013's CSV rows; {args.checkpoint} "
              f"is scored on the labels of {data.source}")
        labels_file = None
    recorded = None if is_onnx_file(ck) else (clf.meta.get("config") or {}).get("labels_file")
    if votes and not labels_file and recorded and Path(recorded).is_file():  # the votes the run trained on, as report takes them
        labels_file = recorded
        print(f"FER+ votes: {recorded} (the run's --labels-file)")
    check_not_input(out, "--json", [_checkpoint_file(ck), data.source, labels_file,
                                    None if is_onnx_file(ck) else runs.trained_on(clf.meta.get("config"))])
    m = evaluate_split(clf, data, split, labels_file, args.tta, _classes_alone(clf.labels, data))
    # a bundled model by its name; any path absolute (one into ferkit's folder too), as relative it told nothing elsewhere
    m.update(checkpoint=args.checkpoint if args.checkpoint in BUNDLED else os.path.abspath(args.checkpoint), precision=clf.precision)
    print(f"{args.checkpoint} on {data.source} [{split}]")
    print(format_report(m))
    write_output(out, json.dumps(m, indent=1))
    print(f"\nwrote {out}")


def _classes_alone(model_labels, data) -> str:
    """evaluate's advice where the data hold classes the model lacks (evaluate has no --labels: the model's are
    fixed), one that works for the data's kind: a folder's or list's classes are named and the others left out;
    a FER2013 CSV's rows are its 7 emotions whatever --label-names says (it is ignored there: advised, it changed
    nothing), so a copy keeps the rows of the model's classes, by their FER2013 ids (labels.class_ids' match)."""
    from .labels import FER2013, canonical

    if data.kind != "pixels":
        return (f"to score the faces of the model's classes alone, name them "
                f"(--label-names {shell_word(','.join(model_labels))}) and leave out the others (--skip-bad-rows)")
    mine = {canonical(n) for n in model_labels}
    ids = [f"{i} ({e})" for i, e in enumerate(FER2013) if canonical(e) in mine]
    if not ids:
        return "none of the model's classes is a FER2013 emotion; give data of its classes (--data)"
    return ("a FER2013 CSV's rows are FER2013's 7 emotions (--label-names is ignored for it); to score the faces of the "
            f"model's classes alone, evaluate a copy of the file that keeps its header and only the rows of emotion "
            f"{', '.join(ids[:-1]) + ' or ' + ids[-1] if len(ids) > 1 else ids[0]}")


# ---------------------------------------------------------------- sanity


MAX_OVERFIT = 1000  # sanity --n: each overfit step passes over all of them (--n 1000000000 took 23 GB and was killed)


def _sanity_args(p):
    p.add_argument("--model", default="shallow", help="preset name or spec file (default shallow)")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override a model spec field")
    p.add_argument("--n", type=int, default=100, help=f"training images to overfit, each step on all of them (default 100, at most {MAX_OVERFIT})")
    p.add_argument("--steps", type=int, default=300, help=f"most optimisation steps for the overfit check (default 300, at most {MAX_STEPS:,})")
    p.add_argument("--lr", type=float, default=1e-3)
    _data_args(p)


def _check_sanity_model(model: str) -> None:
    """A FerkitError where --model names a folder or a trained model: sanity builds a fresh model from a preset or
    spec file (the initial loss of an untrained one), and resolve_spec's "unknown model" said neither what was given
    nor why it is not one."""
    what = trained_model_kind(model)
    if what is None:
        return  # a preset or spec file, or resolve_spec's message: no such preset or spec file
    raise FerkitError(not_a_spec(model, what, "sanity checks an untrained model, built") +
                      (f" (to score a trained one: ferkit evaluate {shell_word(model)})" if what != "a folder" else ""))


@command("sanity", "the paper's sanity checks: initial loss ~ ln 7 (ln of the class count) and overfitting ~100 images", _sanity_args)
def cmd_sanity(args):
    import math

    import numpy as np

    from .data import NO_SPLIT, load_fer, reading_for
    from .model import resolve_spec
    from .sanity import check_steps, data_labels, initial_loss, overfit

    if not 2 <= args.n <= MAX_OVERFIT:
        raise FerkitError(f"--n {args.n}: need --n in 2..{MAX_OVERFIT} training images (batch norm needs two)")
    check_steps(args.steps)
    TrainConfig(lr=args.lr)  # --lr checked as train's is
    _check_sanity_model(args.model)
    spec = resolve_spec(args.model, _parse_set(args.set))
    # data without a split of their own are all training faces here: the checks train, nothing is held out
    reading = {**reading_for(spec, label_names=args.label_names), **NO_SPLIT}
    data = load_fer(args.data, bool(args.skip_bad_rows), **reading)
    classes, y = data_labels(data)
    images, labels = data.images[data.in_split("train")], y[data.in_split("train")]
    labels = classes.targets(labels, "majority", f"{data.source}: its training rows")[0]  # a file without labels: one line
    if data.kind != "pixels":  # a folder's images come class by class: its first --n were one class, "overfit" at once
        order = np.random.default_rng(0).permutation(len(images))  # (FER2013's rows are in no class order: kept)
        images, labels = images[order], labels[order]
    n = len(images[: args.n])
    if n < 2:  # e.g. a file of PublicTest rows only
        raise FerkitError(f"{data.source}: {n} training image(s) with a label; the checks need at least 2")
    print(f"initial loss of a fresh model on {len(images[:1000])} training images ...", flush=True)
    too_large = "lower the model's size (--set in_size=..., filters)"
    with out_of_memory_said("in the sanity checks", too_large):  # (scored in parts of sanity.BATCH faces: not --n)
        loss = initial_loss(spec, images[:1000], labels[:1000], classes=classes)
    chance = math.log(classes.num_classes)  # the loss of uniform guessing
    ok1 = abs(loss - chance) < 0.25
    print(f"[{'PASS' if ok1 else 'FAIL'}] initial loss {loss:.4f} with regularisation off; ln {classes.num_classes} = {chance:.4f}")
    print(f"overfitting {n} training images (at most {args.steps} steps) ...", flush=True)
    with out_of_memory_said("in the sanity checks", f"{too_large} or --n (now {n})"):
        r = overfit(spec, images[:n], labels[:n], steps=args.steps, lr=args.lr, classes=classes)
    ok2 = r["train_acc"] >= 0.99
    print(f"[{'PASS' if ok2 else 'FAIL'}] overfit {n} training images: accuracy {r['train_acc']:.4f}, loss {r['loss']:.4f} after {r['steps']} steps")
    if not (ok1 and ok2):
        sys.exit(1)


# ---------------------------------------------------------------- search


def _search_args(p):
    add_train_flags(p)
    p.add_argument("--param", action="append", metavar="NAME=KIND:ARGS",
                   help="tune a training field or model spec path, e.g. lr=loguniform:1e-4:1e-2, convs.0.dropout=uniform:0:0.5, "
                        "fcs.0.units=categorical:256,512,1024, batch_size=int:32:256 (repeatable; adds to or replaces the defaults)")
    p.add_argument("--no-default-params", action="store_true", help="tune only the --param ones (default: also lr, l2 and the hidden units of each FC layer)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--cv", type=int, metavar="K", help="score trials by stratified K-fold cross-validation on the training rows (mean validation accuracy)")
    g.add_argument("--holdout", action="store_true", help="score trials on the PublicTest rows (the default; K times cheaper than --cv K)")
    p.add_argument("--trials", type=int, default=20, help="completed trials the study should have, over all workers and reruns (default 20; 0 = only write the table)")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="start no new trial after this many seconds")
    p.add_argument("--out", help="search folder (default runs/search-<model>): search.db, search.csv/json, best.yaml, trials/<n>/")
    p.add_argument("--storage", help="Optuna storage URL (default sqlite:///OUT/search.db); workers given one URL (e.g. postgresql://...) share the study")
    p.add_argument("--study-name", default="ferkit", help="study in the storage (default ferkit)")
    p.add_argument("--heartbeat", type=int, default=30, help="seconds between heartbeats of a running trial; one silent for 3 heartbeats (killed) is retried (default 30)")
    p.add_argument("--quiet", action="store_true", help="one line per trial (no per-epoch lines)")


@command("search", "hyper-parameter search (Optuna) with hold-out or k-fold cross-validation; ranked table and best.yaml", _search_args)
def cmd_search(args):
    from .search import run_search, search_space, write_results

    if args.trials < 0:
        raise FerkitError(f"--trials {args.trials}: must be >= 0")
    if args.timeout is not None and not args.timeout > 0:
        raise FerkitError(f"--timeout {args.timeout:g}: must be > 0 seconds (or left out: no time limit)")
    if args.cv is not None and args.cv < 2:  # (--cv 0 was the hold-out search, unsaid: `args.cv or 0` below)
        raise ConfigError(f"--cv {args.cv}: needs at least 2 folds (e.g. --cv 5); leave it out to score on PublicTest")
    cfg = config_from_args(args)
    params = search_space(cfg, args.param, defaults=not args.no_default_params)
    out = check_output(args.out or f"runs/search-{Path(cfg.model).stem}", "--out", folder=True)
    check_not_input(out, "--out", [_data_read(cfg.data)])  # (as train's: its trials' runs are inside it)
    cv = args.cv or 0
    length = "epochs searched" if any(p.name == "epochs" for p in params) else f"{cfg.epochs} epoch(s) per trial"
    print(f"searching {', '.join(p.text for p in params)}\n{cfg.model}, {length}, scored by "
          f"{f'{cv}-fold cross-validation' if cv else 'PublicTest accuracy'}; {args.trials} trials -> {out}", flush=True)
    if args.quiet:  # one line per trial: the trials' per-epoch lines off
        logging.getLogger("ferkit.train").setLevel(logging.WARNING)
    study = run_search(cfg, params, out, args.trials, cv, args.storage, args.study_name, args.timeout, args.heartbeat)
    res = write_results(study, cfg, params, out, cv)
    print("\n" + res["table"] + "\n")
    print("wrote " + ", ".join(str(f) for f in res["files"].values()))
    if "best" in res["files"]:
        print(f"train the best: ferkit train --config {shell_word(res['files']['best'])} --epochs N")


# ---------------------------------------------------------------- serve


def _serve_args(p):
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the network)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--workers", type=int, default=1, help="server processes, each with its own copy of the model (default 1)")
    add_field_flags(p, Settings, skip=("model",))  # --model above, first
    p.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"], default="info",
                   help="server log level (default info: one access-log line per request)")


@command("serve", "web page and REST API: upload a photo, get a box and emotion per face", _serve_args)
def cmd_serve(args):
    from .serve import serve

    serve(args.host, args.port, Settings(**given(args, Settings)), args.workers, args.log_level)


# ---------------------------------------------------------------- predict, demo, export


def _model_args(p):
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--backend", choices=["torch", "onnx"], help=BACKEND_HELP)
    p.add_argument("--device", default="cpu", help="cpu | cuda | mps | auto (torch backend)")
    p.add_argument("--precision", choices=precisions.ANY, help=PRECISION_HELP)
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, help=TTA_HELP)


def _detect_args(p):
    p.add_argument("--detector", choices=["yunet", "haar"], default="yunet",
                   help="face detector: yunet (default; CNN with eye landmarks) or haar (OpenCV's cascade)")
    p.add_argument("--no-align", dest="align", action="store_false", help="do not turn faces upright by their eye landmarks")


def _predict_args(p):
    # the extensions from files.VIDEO_EXTS, what predict reads as videos (a list written here fell behind it)
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help=f"image files, folders (searched recursively) or videos ({' '.join(sorted(VIDEO_EXTS))})")
    _model_args(p)
    _detect_args(p)
    p.add_argument("--crops", action="store_true", help="each image is one face, already cropped (as in FER data sets): no detection")
    p.add_argument("--every", type=int, default=1, metavar="N", help="videos: use every Nth frame (default 1)")
    p.add_argument("--json", metavar="FILE", help="write all results as JSON")
    p.add_argument("--csv", metavar="FILE", help="write one row per face (per sampled frame for videos; an empty row for none) as CSV")
    p.add_argument("--annotate", metavar="DIR|FILE", help="write copies with boxes, labels and probabilities drawn into the folder "
                   "DIR; for one photo or video, FILE names the copy itself (out.jpg, out.png, out.mp4)")


@command("predict", "find the faces in photos, folders or videos and name the emotion of each", _predict_args)
@takes_back_folders("json", "csv", "annotate")  # refused for its inputs or its model after check_outputs made them
def cmd_predict(args):
    from .jobs import names_one_copy
    from .outputs import ResultsWriter, format_result
    from .predict import Predictor

    if args.every < 1:
        raise FerkitError(f"--every {args.every}: must be >= 1 (1 = every frame)")
    one_copy = names_one_copy(args.annotate)
    texts = [(name, Path(out)) for name, out in (("--json", args.json), ("--csv", args.csv)) if out]
    for name, out in texts:  # the names first: check_outputs makes missing folders
        check_text_output(out, name, "the results", name.replace("--", "."))
    check_outputs(("--json", args.json, False), ("--csv", args.csv, False), ("--annotate", args.annotate, not one_copy))
    files, problems, copies = _predict_inputs(args, one_copy, texts)
    predictor = Predictor(args.model, backend=args.backend, device=args.device, detector=args.detector, align=args.align,
                          precision=args.precision, tta=args.tta)
    # a checkpoint's own data (which int8 calibrates on): results over its CSV, copies among its faces
    own = runs.trained_on(predictor.classifier.meta.get("config")) if predictor.classifier is not None else None
    for name, out in (("--json", args.json), ("--csv", args.csv), ("--annotate", args.annotate)):
        if out:
            check_not_input(Path(out), name, [own])
    done, failed, copied = 0, len(problems), 0  # the results themselves go to the files as they come, not kept
    bar, wrote = _progress(files), [f for f in (args.json, args.csv) if f]
    # the files are renamed into place at the end and at Ctrl-C (what was done so far is kept, not lost with
    # the rest); any other error leaves the earlier files as they were
    with ResultsWriter(args.json, args.csv, predictor.labels) as results:
        try:
            for path, _ in bar:
                res = _predict_one(args, predictor, path, copies.get(path), results)
                done, failed, copied = done + ("error" not in res), failed + ("error" in res), copied + ("annotated" in res)
        except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM
            bar.close()
            if getattr(e, "result", None):  # video.Interrupted: the frames of the video it was in
                results.add(e.result)
                _write(format_result(e.result), sys.stdout)
            raise KeyboardInterrupt(f"after {results.count} of {len(files)} files" + (f": wrote {', '.join(wrote)} with those" if wrote else "")) from None
    if copied:  # (a copy that could not be written was a warning)
        wrote.append(f"the annotated copy {args.annotate}" if one_copy else f"{copied} annotated cop{'y' if copied == 1 else 'ies'} in {args.annotate}")
    print(f"\n{done} file(s) processed, {failed} failed" + (f"; wrote {', '.join(wrote)}" if wrote else ""))
    if done == 0:
        raise FerkitError("none of the inputs could be processed; see the messages above")


def _predict_inputs(args, one_copy: bool, texts: list) -> tuple[list, list[str], dict]:
    """predict's inputs (files, problems) and their copies' paths, once checked against its outputs; each
    problem said on stderr. A FerkitError when nothing is left to process or an output would replace an input."""
    from .jobs import collect_inputs, copy_paths

    files, problems = collect_inputs(args.paths)
    if args.annotate and not one_copy:
        folder = Path(args.annotate).resolve()
        if any(Path(p).is_dir() and Path(p).resolve() == folder for p in args.paths):
            raise FerkitError(f"--annotate {args.annotate}: is a folder being read, and its copies would take the photos' "
                              "names; give another folder (one inside it is fine)")
        # a folder's walk skips the copies an earlier run left inside it (they would nest deeper each run)
        files = [(f, root) for f, root in files
                 if root is None or folder not in f.resolve().parents or root.resolve() not in folder.parents]
    copies = copy_paths(args.annotate, files)
    inputs = {f.resolve() for f, _ in files}
    for f, out in copies.items():
        if out.resolve() in inputs:
            raise FerkitError(f"--annotate {args.annotate}: the copy of {f} would be written over {out}, an input; "
                              f"give another {'name' if one_copy else 'folder'}")
        # a name made from its input's, in the input's own folder: a file there under it is the user's (talk.mp4
        # beside talk.mov, a.png beside a.gif), which the copy replaced without a word
        if not one_copy and out.parent.resolve() == f.parent.resolve() and os.path.lexists(out):
            raise FerkitError(f"--annotate {args.annotate}: the copy of {f} would be written over {out}, a file beside it; "
                              "give another folder")
    for name, out in texts:  # never over a photo it reads (a folder's included)
        check_not_input(out, name, [f for f, _ in files])
    for msg in problems:
        print(f"error: {msg}", file=sys.stderr)
    if not files:
        raise FerkitError(f"nothing to process in {', '.join(map(quoted, args.paths))}; give image files, folders of images or videos")
    return files, problems, copies


class _NoBar(list):
    def close(self):
        pass


def _progress(files: list):
    """A progress bar over several files; none where tqdm (the training extra) is not installed."""
    try:
        from tqdm import tqdm
    except ModuleNotFoundError:
        return _NoBar(files)
    return tqdm(files, desc="predict", unit="file", disable=None if len(files) > 1 else True, file=sys.stderr)


def _write(text: str, file) -> None:
    """print, through tqdm where its bar may be on screen (the bar is redrawn below the line)."""
    tqdm = sys.modules.get("tqdm")
    (tqdm.tqdm.write if tqdm else print)(text, file=file)


def _predict_one(args, predictor, path: Path, copy: Path | None, results) -> dict:
    """Predict one file, print its result (or its error) and add it to results (outputs.ResultsWriter); returns it.
    copy: where its annotated copy goes (None: no copy)."""
    from .jobs import predict_file
    from .outputs import format_result

    try:
        res = predict_file(predictor, path, args.every, copy, crops=args.crops, frames=results.frames(path))
    except OutputError:  # --json or --csv cannot be written (a full disk): the command stops, not this file
        raise
    except FerkitError as e:
        _write(f"error: {e}", sys.stderr)
        res = {"file": str(path), "error": str(e), "reason": getattr(e, "reason", "error")}
    else:
        _write(format_result(res), sys.stdout)
    results.add(res)
    return res


def _demo_args(p):
    _model_args(p)
    _detect_args(p)
    p.add_argument("--out", default="ferkit-demo.png", help="annotated picture to write (default ferkit-demo.png)")


@command("demo", "run the bundled model on a sample photo (an astronaut, shipped with ferkit) and save the annotated picture", _demo_args)
@takes_back_folders("out")  # check_output makes --out's folder: a failed write (a full disk) left it empty
def cmd_demo(args):
    from .draw import annotate, check_encodable, save_rgb
    from .faces import load_image
    from .outputs import format_result
    from .predict import DEMO_PHOTO, Predictor

    # a folder as --out was "cannot encode the image as a file without an extension"; the demo photo as --out
    # would make every later demo start from the boxes drawn; an extension with no image writer, said
    # after the model had loaded and predicted
    check_not_input(check_output(args.out, "--out"), "--out", [DEMO_PHOTO])
    check_encodable(args.out, "--out")
    rgb = load_image(DEMO_PHOTO)  # shipped inside ferkit: the demo needs no download
    predictor = Predictor(args.model, backend=args.backend, device=args.device, detector=args.detector, align=args.align,
                          precision=args.precision, tta=args.tta)
    t = time.perf_counter()
    recs = predictor.predict(rgb)
    ms = (time.perf_counter() - t) * 1000
    save_rgb(annotate(rgb, recs), args.out)
    print(format_result({"file": DEMO_PHOTO.name, "type": "image", "width": rgb.shape[1], "height": rgb.shape[0], "faces": recs}))
    print(f"\nmodel {predictor.path} ({predictor.backend}, {predictor.precision}), {args.detector} detector; detection + prediction took {ms:.0f} ms; wrote {args.out}")


def _export_args(p):
    p.add_argument("checkpoint", help="a .pt file from `ferkit train` (or its run folder)")
    p.add_argument("--onnx", metavar="OUT", help="the .onnx file to write")
    p.add_argument("--pt", metavar="OUT", help="an inference-only checkpoint to write, NAME.pt or NAME.pth (no optimizer or training state)")
    p.add_argument("--half", action="store_true", help="with --pt: weights in float16 (half the size; loaded back as float32)")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None, help="average with the mirrored face inside the graph (default: as trained)")
    p.add_argument("--int8", action="store_true", help="quantize to int8 (onnxruntime static quantization), calibrated on training faces of --data")
    p.add_argument("--data", help="FER2013 CSV or image folder whose training faces calibrate --int8 (for a colour or larger "
                                  "model, its own training image folder); default: the data it trained on, else $FERKIT_DATA or "
                                  "../shared/data/fer2013/fer2013.csv.gz")
    p.add_argument("--skip-bad-rows", action="store_true", help="with --int8: skip malformed rows/images of the calibration "
                                                                 "data (a run trained with --skip-bad-rows needs it too)")


def _export_target(name: str, flag: str, src: Path, data: Path | None = None) -> Path:
    """export's output file, its missing folders created: never the checkpoint it reads, nor a file of a run
    (a slim copy over last.pt has no training state to resume from), not even through a link to them, nor a
    file in the image folder that calibrates --int8 (`data`)."""
    out = check_output(name, flag)
    check_not_input(out, flag, [src, data])
    runs.check_not_run_file(out, flag)
    return out


@command("export", "export a checkpoint to ONNX (uint8 faces (N, 48, 48) in, or the model's own size and colour "
                   "(N, H, W, 3); probabilities (N, C) out) or to a slim .pt", _export_args)
@takes_back_folders("onnx", "pt")
def cmd_export(args):
    from .checkpoint import inference_copy, load_checkpoint, read_checkpoint, save_checkpoint
    from .data import OWN_SPLITS
    from .files import sha256_of
    from .onnx_export import CHECK_FACES, calibration_faces, calibration_reading, check_exportable, export_checked

    if bool(args.onnx) == bool(args.pt):
        raise FerkitError("give one of --onnx OUT (an ONNX graph) or --pt OUT (a slim checkpoint)"
                          + (", not both (run export twice for both)" if args.onnx else ""))
    # evaluate, predict and serve tell a graph from a checkpoint by its .onnx; a slim copy named fer2013.csv, a.jpg or
    # spec.json replaced the user's data, photo or spec
    if args.onnx and Path(args.onnx).suffix.lower() != ".onnx" or args.pt and Path(args.pt).suffix.lower() not in (".pt", ".pth"):
        flag, name = ("--onnx", args.onnx) if args.onnx else ("--pt", args.pt)
        raise FerkitError(f"{flag} {name}: name {'the graph NAME.onnx' if args.onnx else 'the checkpoint NAME.pt (or .pth)'} "
                          "(ferkit knows a graph by its .onnx, a checkpoint by its .pt)")
    args.checkpoint = _checkpoint_path(args.checkpoint)
    src = _checkpoint_file(args.checkpoint)
    if args.pt:
        if args.int8 or args.data or args.skip_bad_rows or args.tta is not None:
            raise FerkitError("--int8, --data, --skip-bad-rows and --tta are for --onnx; --pt copies the checkpoint (with "
                              "--half in float16)")
        import numpy as np

        out = _export_target(args.pt, "--pt", src)
        with output_errors(out):
            save_checkpoint(inference_copy(read_checkpoint(args.checkpoint), args.half), out)
        clf = load_checkpoint(args.checkpoint)
        faces = np.random.default_rng(0).integers(0, 256, (CHECK_FACES, *clf.face_shape), dtype=np.uint8)
        diff = np.abs(load_checkpoint(out).predict_proba(faces) - clf.predict_proba(faces)).max()
        print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB{', float16 weights' if args.half else ''}); "
              f"max |diff| of its probabilities on {CHECK_FACES} random faces: {diff:.1e}")
        return
    if args.half:
        raise FerkitError("--half is for --pt; for a smaller, faster ONNX graph use --int8")
    if (args.data or args.skip_bad_rows) and not args.int8:
        flag = "--data" if args.data else "--skip-bad-rows"
        raise FerkitError(f"{flag} is for the faces that calibrate --int8; add --int8, or leave {flag} out")
    clf = load_checkpoint(args.checkpoint)
    check_exportable(clf, args.checkpoint)  # before --int8's calibration faces are read (seconds, and their warnings)
    config = clf.meta.get("config")  # the faces it trained on, read as it read them
    own = runs.trained_on(config)
    reading = calibration_reading(clf.spec, config, args.data)  # other images than its own: all calibrate
    # the run's own data are read as it read them, bad rows skipped where it skipped them
    skip = args.skip_bad_rows or runs.skipped_bad_rows(config, args.data)
    # (once the data --int8 reads is known: the run's own, recorded in the checkpoint, where no --data is given)
    out = _export_target(args.onnx, "--onnx", src, _data_read(args.data or own) if args.int8 else None)
    # data that cannot hold the split the run drew (its own, since cut): export's ways, not train's fraction flags
    fix = (("the data have changed since it trained; " if own else "") +
           f"calibrate on all the images of other data with --data PATH, or {OWN_SPLITS}")
    faces = calibration_faces(args.data or own, skip_bad_rows=skip, split_fix=fix, **reading) if args.int8 else None
    with output_errors(out):  # a full disk: one line, and an earlier file there stays
        diff = export_checked(clf, out, args.tta, calibration=faces, meta={"checkpoint_sha256": sha256_of(src)})
    tta = clf.tta if args.tta is None else args.tta
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB; {'int8, calibrated on ' + str(len(faces)) + ' training faces' if args.int8 else 'fp32'}; "
          f"tta {'on' if tta else 'off'}; faces in: uint8 (N, {', '.join(map(str, clf.face_shape))})); "
          f"onnxruntime vs torch fp32 on {min(CHECK_FACES, len(faces)) if args.int8 else CHECK_FACES} "
          f"{'training' if args.int8 else 'random'} faces: max |diff| {diff:.1e}")


# ---------------------------------------------------------------- plot, visualize, report


RUNS_HELP = "run folders of `ferkit train`, or checkpoints (.pt files, bundled models' names) whose run folders are gone"


def _run_paths(names: list[str]) -> list[str | Path]:
    """RUN_DIR arguments as paths: a bundled model's name means its checkpoint, as for evaluate (./NAME: a folder)."""
    return [_checkpoint_path(n) for n in names]


def _checkpoint_path(name: str) -> str | Path:
    """A checkpoint argument as a path: a bundled model's name means its checkpoint (./NAME: a folder or file)."""
    from .predict import BUNDLED, model_path

    return model_path(name) if name in BUNDLED else name


def _checkpoint_file(name: str | Path) -> Path:
    """The checkpoint file a checkpoint argument reads: a run folder's best.pt (else last.pt), else the file itself."""
    p = Path(_checkpoint_path(name))
    return runs.folder_checkpoint(p) if p.is_dir() else p


def _data_read(path: str | None) -> Path | None:
    """The data that load_fer reads for --data `path` (None: $FERKIT_DATA's, else the shared copy), or None where
    there is none (load_fer says so when it reads): what a command's outputs are checked against (check_not_input)."""
    from .data import find_data
    from .errors import DataError

    try:
        return find_data(path)
    except DataError:
        return None


def _files_of(paths: list[str | Path]) -> list[Path]:
    """The files that run arguments name: a checkpoint, or every file of a run folder."""
    return [f for p in map(Path, paths) for f in ([p] if p.is_file() else sorted(p.glob("*")) if p.is_dir() else [])]


def _plot_args(p):
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help=RUNS_HELP + " (several: compared side by side)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the PNGs")


@command("plot", "PNG figures of run folders: loss and accuracy histories, confusion matrices, per-class accuracy", _plot_args)
@takes_back_folders("out")  # its first figure's write makes --out: a failed one (a full disk) left it empty
def cmd_plot(args):
    from .checkpoint import read_runs
    from .metrics import format_per_class
    from .plots import run_figures, save

    out = check_output(args.out, "--out", folder=True)
    folders = read_runs(_run_paths(args.runs))
    check_not_input(out, "--out", [runs.trained_on(run.config) for run in folders])  # (as visualize's: PNGs are faces there)
    metrics = runs.best_metrics(folders)
    files = [save(fig, out / name) for name, fig in run_figures(folders, metrics)]
    print(runs.format_summary(folders) + "\n")
    if metrics:
        print(format_per_class(metrics) + "\n")
    else:
        print("no metrics-*.json in the run folders: run `ferkit evaluate RUN_DIR` first for confusion matrices and per-class accuracy\n")
    print("wrote " + ", ".join(str(f) for f in files))


def _visualize_args(p):
    p.add_argument("checkpoint", help="a .pt file from `ferkit train` (or its run folder, meaning best.pt)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--image", metavar="PATH", help="a photo: its largest detected face is used (else the whole picture)")
    src.add_argument("--row", type=int, metavar="N", help="row N (0-based) of --split of the data (--data)")
    p.add_argument("--split", choices=["train", "val", "test", "all"], default="val",
                   help="split for --row (default val = PublicTest); all: every image, no split drawn (e.g. a few photos a class)")
    p.add_argument("--what", nargs="+", choices=["activations", "filters", "dream"], default=["activations", "filters", "dream"],
                   help="what to draw (default all three)")
    p.add_argument("--layer", type=int, help="DeepDream: conv layer, 1-based (a ResNet's 1 conv1, its stem, 2-5 layer1-4; "
                   "MobileNetV2's 1-19 features.0-18) (default: the middle one)")
    p.add_argument("--octaves", type=int, default=3, help="DeepDream: pyramid levels (default 3)")
    p.add_argument("--octave-scale", type=float, default=1.4, help="DeepDream: size ratio between levels (default 1.4)")
    p.add_argument("--steps", type=int, default=20, help=f"DeepDream: gradient steps per octave (default 20, at most {MAX_STEPS:,})")
    p.add_argument("--step-size", type=float, default=0.01, help="DeepDream: step length relative to the mean gradient (default 0.01)")
    p.add_argument("--jitter", type=int, default=2, help="DeepDream: random shift in pixels before each step (default 2)")
    p.add_argument("--objective", choices=["l2", "mean"], default="l2", help="DeepDream: maximise the L2 norm or the mean of the layer's output")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the PNGs")
    _data_args(p, "as the checkpoint was trained, else labels.txt or the class folders", "the data it trained on, else ")


VISUALIZE_FILES = {"activations": ("activations.png", "activations.npz"), "filters": ("filters.png",),
                   "dream": ("dream-face.png", "dream.png")}  # what each --what writes into --out, beside face.png


@command("visualize", "activation maps, first-layer filters and DeepDream of a checkpoint on a face", _visualize_args)
@takes_back_folders("out")  # (as plot's)
def cmd_visualize(args):
    import numpy as np

    from . import plots
    from .checkpoint import load_checkpoint
    from .dream import DreamSettings, check_settings, deep_dream, layer_objective
    from .visualize import (
        activation_maps,
        demo_face,
        face_from_data,
        face_from_image,
        first_layer_filters,
        layer_name,
        layer_names,
        save_face,
        short_names,
    )

    out = check_output(args.out, "--out", folder=True)
    writes = ["face.png", *(name for what in args.what for name in VISUALIZE_FILES[what])]
    for name in writes:  # a photo in --out named like an output was replaced by its 48x48 crop
        if os.path.lexists(out / name) and not (out / name).is_file():  # (found when written: dream.png after the dream)
            what = "a folder" if (out / name).is_dir() else "not a regular file"
            raise FerkitError(f"--out {args.out}: its {name} is {what}, and visualize writes {name} there; move it away "
                              "or give another --out")
        if args.image and (out / name).is_file() and Path(args.image).is_file() and (out / name).samefile(args.image):
            raise FerkitError(f"--out {args.out}: visualize writes {name} there, and that is --image {args.image}; "
                              "give another folder")
    clf = load_checkpoint(_checkpoint_path(args.checkpoint))
    if not len(clf.model.features):  # e.g. a spec of FC layers alone
        raise FerkitError(f"{args.checkpoint}: its model has no conv layers, so no activation maps, filters or DeepDream "
                          "to draw")
    config = clf.meta.get("config")  # --data, else the run's own data (as evaluate reads it), else the default
    # the PNGs in an image folder would be faces of its next reading: refused for the data --row reads and the
    # run's own, whether read now or not
    check_not_input(out, "--out", [runs.trained_on(config), _data_read(args.data or runs.trained_on(config))])
    if args.image:
        face, how = face_from_image(args.image, clf.spec)
        title = f"{args.image}: {how}"
    elif args.row is not None:
        from .data import NO_SPLIT, OWN_SPLITS, load_fer, reading_for

        reading = reading_for(clf.spec, config, args.label_names)
        if args.split == "all":  # no split drawn (a few images a class could not be split)
            reading.update(NO_SPLIT)
        data = load_fer(args.data or runs.trained_on(config), bool(args.skip_bad_rows), **reading,
                        split_fix=f"take row {args.row} of every image with --split all (no split drawn), or {OWN_SPLITS}")
        face, label = face_from_data(data, args.split, args.row)
        name = "none" if label < 0 else data.names[label] if data.names else f"id {label}"
        title = f"{args.split} row {args.row} (label: {name})"
    else:
        face, title = demo_face(clf.spec), "no --image or --row: scikit-image's astronaut face"
    if "dream" in args.what:  # bad settings fail before anything is written
        dream_settings = DreamSettings(args.layer, args.octaves, args.octave_scale, args.steps, args.step_size, args.jitter,
                                       args.objective)
        layer = check_settings(clf, dream_settings)
    probs = clf.predict_proba(face[None])[0]
    print(f"{title}; predicted {clf.labels[int(probs.argmax())]} ({probs.max():.2f})")
    files = [save_face(face, out / "face.png")]
    if "activations" in args.what:
        maps, names = activation_maps(clf, face), short_names(clf.model)  # (names once, not layer_name's once a layer)
        write_output(out / "activations.npz", lambda f: np.savez_compressed(f, **dict(zip(names, maps))))
        files += [plots.save(plots.plot_activations(face, maps, layer_names(clf.model)), out / "activations.png"), out / "activations.npz"]
    if "filters" in args.what:
        files.append(plots.save(plots.plot_filters(first_layer_filters(clf.model)), out / "filters.png"))
    if "dream" in args.what:
        # said before it starts: a large --steps runs for minutes with nothing else on the screen
        from_layer = layer_name(clf.model, layer)
        print(f"DeepDream from {from_layer} (--layer {layer}): up to {args.octaves} octaves x {args.steps} steps ...", flush=True)
        dream = deep_dream(clf, face, dream_settings)
        before, after = layer_objective(clf, np.stack([face, dream]), layer, args.objective)
        print(f"  {args.objective} objective {before:.4f} -> {after:.4f}")
        files += [save_face(dream, out / "dream-face.png"),
                  plots.save(plots.plot_dreams(face[None], dream[None], [from_layer]), out / "dream.png")]
    print("wrote " + ", ".join(str(f) for f in files))


def _report_args(p):
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help=RUNS_HELP + " (several: a comparison)")
    p.add_argument("--out", default="report.html", help="the HTML file to write (default report.html)")
    p.add_argument("--data", help="FER2013 file to evaluate on (PublicTest rows); default: each run's training data, else the default location")
    p.add_argument("--no-data", action="store_true", help="evaluate nothing; show only what needs no data")
    p.add_argument("--skip-bad-rows", action="store_true", help="skip malformed rows/images of the data and report how many")
    p.add_argument("--faces", type=int, default=4, help="faces shown with DeepDream (default 4, at most 32; 0: no DeepDream, the quick report of many runs)")
    p.add_argument("--demo-faces", action="store_true", help="draw activations and DeepDream on scikit-image's astronaut, not FER2013 faces (for reports you publish)")


MAX_REPORT_FACES = 32  # a page of DeepDreams; --faces 100000 ran one on every validation face (hours)


@command("report", "one self-contained HTML page: configuration, histories, evaluation, filters, activations, DeepDream", _report_args)
@takes_back_folders("out")
def cmd_report(args):
    from .report import build_report

    if args.no_data and args.data:
        raise FerkitError("--data and --no-data contradict each other; give one")
    if not 0 <= args.faces <= MAX_REPORT_FACES:  # each face is a DeepDream of every run: seconds each
        raise FerkitError(f"--faces {args.faces}: must be 0..{MAX_REPORT_FACES} (0: no DeepDream)")
    paths = _run_paths(args.runs)
    out = check_output(args.out, "--out")
    check_not_input(out, "--out", _files_of(paths) + ([args.data] if args.data and not args.no_data else []))
    check_text_output(out, "--out", "the report", ".html")
    res = build_report(paths, args.out, False if args.no_data else args.data, args.faces, data_faces=not args.demo_faces,
                       skip_bad_rows=args.skip_bad_rows)
    for n in res["notes"]:
        print(f"note: {n}")
    print(f"wrote {res['path']} ({res['bytes'] / 1e6:.2f} MB) in {res['seconds']:.0f}s")


# ---------------------------------------------------------------- main


class _Version(argparse.Action):
    """--version: the version, and what this CPU gets by default (found only when asked)."""

    def __call__(self, parser, namespace, values, option_string=None):
        from .predict import describe_default

        print(f"ferkit {__version__}\n{describe_default()}")
        parser.exit()


def _non_empty(optional: bool):
    """An argparse type for a text value that refuses an empty one: the commands read "" as a value
    not given (`args.out or DEFAULT`), so `--resume "$RUN"` with RUN unset started a new 30-epoch run,
    `--model ""` ran the default model and `predict ""` searched the current folder."""
    def text(value: str) -> str:
        if not value.strip():
            how = "or leave the option out for its default" if optional else "(the shell variable that gave it may be unset)"
            raise argparse.ArgumentTypeError(f"an empty value; give one {how}")
        return value

    text.__name__ = "text"  # (argparse names the type in its own messages)
    return text


def _refuse_empty_values(parser: argparse.ArgumentParser) -> None:
    """Every flag and positional of parser that takes text (a path, a name, a list item) refuses an empty value."""
    for action in parser._actions:
        if action.nargs != 0 and action.type in (None, str) and not isinstance(action, argparse._SubParsersAction):
            action.type = _non_empty(bool(action.option_strings))


class _Parser(argparse.ArgumentParser):
    """argparse's parser (its sub-commands' too) whose usage errors a torchrun job prints once per
    machine, as it does its other refusals: every process parsed the same command line."""

    def error(self, message):
        if _said_elsewhere(FerkitError(message)):
            self.exit(2)
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    # allow_abbrev=False: argparse would otherwise take --epoch for --epochs (and a typo for some other flag)
    parser = _Parser(prog="ferkit", description="Facial expression recognition on FER2013 and photos", allow_abbrev=False)
    parser.add_argument("--version", action=_Version, nargs=0, help="ferkit's version, this CPU and the prediction path it gets")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help, add_arguments, _) in COMMANDS.items():
        p = sub.add_parser(name, help=help, description=help, allow_abbrev=False)
        add_arguments(p)
        _refuse_empty_values(p)
    return parser


class _Plain(logging.Formatter):
    """A log line as the CLI's own output: the message alone, "warning:" or "error:" before a problem,
    and the traceback of a logged exception (a server's bug, logged and answered 500) after it."""

    def format(self, record):
        msg = record.getMessage()
        if record.exc_info:
            msg += "\n" + self.formatException(record.exc_info)
        level = "error" if record.levelno >= logging.ERROR else "warning" if record.levelno >= logging.WARNING else None
        return f"{level}: {msg}" if level else msg


def setup_logging() -> logging.Handler:
    """Print the library's INFO lines plainly on stdout while a command runs; returns the handler to remove."""
    logger = logging.getLogger("ferkit")
    handler = logging.StreamHandler(sys.stdout)  # the stdout of now (tests swap it)
    handler.setFormatter(_Plain())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


def _escape_unencodable_output() -> None:
    """Let stdout write what its encoding cannot as a backslash escape, as Python's stderr does: under a
    locale other than C or POSIX (en_US.UTF-8, a desktop's), Python's stdout is strict, and a file name
    whose bytes are not UTF-8 (Latin-1 'caf\\xe9.jpg', kept by Python as a lone surrogate) printed in a
    result or a log line was a UnicodeEncodeError traceback; now 'caf\\udce9.jpg', as error messages say it.
    (Under C or POSIX Python's stdout writes such a name's own bytes back: left as it is.)"""
    if getattr(sys.stdout, "errors", None) == "strict" and hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _under_torchrun() -> bool:
    """Whether this process is one of a torchrun job of several processes, which sets WORLD_SIZE (RANK alone
    may be a cluster's or a shell's, and then ferkit must still speak), with torch to join it: distributed.py
    needs torch, which a light install has not."""
    if os.environ.get("WORLD_SIZE", "1") in ("", "1"):
        return False
    try:
        return importlib.util.find_spec("torch") is not None
    except ImportError:  # (an import hook may refuse a module rather than not find it)
        return False


def _said_elsewhere(e: FerkitError | KeyboardInterrupt) -> bool:
    """Under torchrun, whether another process prints this refusal or interrupt (distributed.said_elsewhere):
    each process met it alike, and the job said it once per process."""
    if not _under_torchrun():
        return False
    from .distributed import said_elsewhere

    return said_elsewhere(e)


def _block(message: str) -> str:
    """A refusal of several lines as one block under its "error:": a line that starts flush left (each of several
    problems joined by a newline: bad --set paths, a resume's edits and then its way on) is indented two spaces, as
    the lines of a list ("  - ...") already are; flush left, each read as a message of its own without "error:"."""
    return re.sub(r"\n(?=\S)", "\n  ", message)


def main(argv: list[str] | None = None) -> int:
    if _under_torchrun():  # by whichever entry (-m ferkit, -m ferkit.cli, --no-python ferkit)
        from .distributed import quiet_other_ranks

        # only rank 0 prints (ranks > 0 said "done: no validation split": they do not validate); errors reach stderr
        quiet_other_ranks()
    args = build_parser().parse_args(argv)
    _escape_unencodable_output()
    handler = setup_logging()  # (on the stdout just chosen)
    # SIGTERM (kill, timeout, docker stop, systemd) stops a command as Ctrl-C does, keeping what it
    # saves then (predict's results so far); serve's uvicorn installs its own handlers while it runs
    main_thread = threading.current_thread() is threading.main_thread()
    term = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None
    try:
        try:
            COMMANDS[args.command][2](args)
        except ModuleNotFoundError as e:  # a light install (no extras) running a command that needs one
            raise needs_extra(e, f"ferkit {args.command}") from None
    except FerkitError as e:
        if not _said_elsewhere(e):
            print(f"error: {_block(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # a command may say what it saved before stopping
        if not _said_elsewhere(e):
            print(f"interrupted {e}" if str(e) else "interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout's reader went away (`ferkit models | head -3`): stop quietly, as tools stopped by SIGPIPE do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (else Python's flush at exit raises it again)
        return 141  # 128 + SIGPIPE, the status a shell reports for such a tool
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, term)
        logging.getLogger("ferkit").removeHandler(handler)
        logging.getLogger("ferkit.train").setLevel(logging.NOTSET)
    return 0


if __name__ == "__main__":
    sys.exit(main())
