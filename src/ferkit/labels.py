"""Label sets: the emotions a model predicts, how data rows become its training targets, and what
its faces are scored against — one place for all.

A checkpoint carries its own list of emotion names; everything downstream (evaluate, plots,
report, predict, serve, the web page, ONNX export) asks the model for it, and `for_emotions`
finds its label set again. Four sets are known (`label_set(name)`):

    fer2013    7 emotions, FER2013's label order (0 angry ... 6 neutral): the data file's own labels
    ferplus    the same 7 plus contempt (FER+, Barsoum et al. 2016; index 7): ten votes per face
    rafdb      RAF-DB's 7 in its order; its files number them from 1 (1 surprise ... 7 neutral)
    affectnet  AffectNet's 8 in its order (0 neutral ... 7 contempt)

and `--labels data` is the set the data declare: its class folders' names, or labels.txt /
--label-names (`DataLabels`). A data set's classes train a known set's outputs by name, with
synonyms (a folder `happiness` is FER2013's `happy`): `class_ids` maps them, and names no output
takes are one error listing them. Integer labels without names (an image list of ids) are the
chosen set's own ids. Adding a set is one LabelSet subclass listed in LABEL_SETS. The model's
width (ModelSpec.num_classes) comes from here. This module stays light (no torch): the inference
core imports it; FER+'s vote reader (ferplus.py) is imported only when votes are read.
"""

from __future__ import annotations

import logging
import unicodedata

import numpy as np

from .errors import ConfigError, DataError, quoted

FER2013 = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # also the ids in FER2013 files
FERPLUS = FER2013 + ("contempt",)
RAFDB = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")  # RAF-DB's basic emotions, ids 1..7
AFFECTNET = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")  # AffectNet's 8, ids 0..7
# Names that mean one emotion, as data sets spell them: each maps to the name ferkit compares by.
SYNONYMS = {"happiness": "happy", "sadness": "sad", "anger": "angry", "surprised": "surprise", "fearful": "fear",
            "scared": "fear", "disgusted": "disgust", "contemptuous": "contempt", "neutrality": "neutral"}
log = logging.getLogger(__name__)
DATA = "data"  # --labels data: the classes the data declare (DataLabels)
MAX_CLASSES = 1000  # classes of a data-declared set: ImageNet's count, far above any expression data set
MAX_NAME = 255  # characters of a class name: a folder name's limit; a metrics file's name of 1 MB hung plot and report
# --label-mode: how a label set with more than one label per face turns them into targets (see FerPlus).
LABEL_MODES = ("majority", "probability", "crossentropy", "multi_target")
# --labels' default, and the label set of checkpoints and metrics written before label sets existed.
DEFAULT = "fer2013"

# One colour per emotion, used by every plot, the annotated images and the web page.
COLOR_OF = {"angry": "#d62728", "disgust": "#8c564b", "fear": "#9467bd", "happy": "#ffbf00", "sad": "#1f77b4",
            "surprise": "#ff7f0e", "neutral": "#7f7f7f", "contempt": "#17becf"}


class LabelSet:
    """What a model's outputs mean and how a data file's rows are labelled for them.

    `annotations` reads what the set knows of each row of a FerData (row-aligned, so callers pick
    splits with data.splits); `targets` and `eval_labels` turn a selection of those rows into
    training targets and evaluation labels. `where` names the rows in error messages."""

    name = ""  # the --labels value, stored in training configs
    title = ""  # the name in messages
    emotions: tuple[str, ...] = ()  # the model's outputs, in order
    about = ""  # one line for --labels' help
    modes: tuple[str, ...] = ()  # the label modes that give different targets; () = every mode trains on plain labels
    first_id = 0  # the integer that stands for emotions[0] in the set's files (RAF-DB counts from 1)

    @property
    def num_classes(self) -> int:
        """The model's width: one output per emotion (the one source of ModelSpec.num_classes)."""
        return len(self.emotions)

    def annotations(self, data, labels_file=None, fix: str | None = None) -> np.ndarray:
        """What this set knows of each row of `data` (N, ...), aligned with data.splits; fix: class_ids'."""
        raise NotImplementedError

    def targets(self, rows: np.ndarray, mode: str, where: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Training targets of annotation rows for a label mode: (labels (N,) int64, soft targets
        (N, C) float32 or None for plain labels, keep (N,) bool: the faces to train on)."""
        raise NotImplementedError

    def eval_labels(self, rows: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray | None]:
        """What annotation rows are scored against: (labels (N,) int64, -1 = left out of the accuracy;
        top-vote sets (N, C) bool for the most-voted-emotions measure, or None)."""
        raise NotImplementedError

    def reads_votes(self, data) -> bool:
        """Whether `data` are labelled by this set's vote file (and --labels-file and --label-mode
        apply): FER+'s votes follow FER2013's CSV rows alone; one's own images have their classes."""
        return bool(self.modes) and data.kind == "pixels"


def _labelled(labels: np.ndarray, where: str, then: str) -> np.ndarray:
    # A FER2013 file may come without its 'emotion' column (-1): nothing to train on or score against.
    missing = int((labels < 0).sum())
    if missing and missing == len(labels):
        raise DataError(f"{where} have no 'emotion' labels{then}")
    if missing:  # an image list's rows with an empty label among labelled ones
        raise DataError(f"{where}: {missing} of {len(labels)} have no label; give each a label or leave those rows out")
    return np.asarray(labels, np.int64)


class PlainLabels(LabelSet):
    """One label per face, the data's own: its classes mapped onto this set's emotions by name (class_ids)."""

    def annotations(self, data, labels_file=None, fix=None) -> np.ndarray:
        return class_ids(data.labels, data.names, self, data.source, fix)  # labels_file is FER+'s

    def targets(self, rows, mode, where):
        return _labelled(rows, where, "; train on a labelled file"), None, np.ones(len(rows), bool)  # every mode: plain labels

    def eval_labels(self, rows, where):
        missing = int((rows < 0).sum())
        if 0 < missing < len(rows):  # an image list may leave some labels empty: left out (-1), as FER+'s faces without a majority
            log.warning(f"{where}: {missing} of {len(rows)} have no label; they are left out of the accuracy")
            return np.asarray(rows, np.int64), None
        return _labelled(rows, where, ", so accuracy cannot be measured"), None


class Fer2013(PlainLabels):
    name, title, emotions = "fer2013", "FER2013", FER2013
    about = "7 emotions in FER2013's order (ids 0 angry ... 6 neutral), the data's classes matched by name"


class RafDb(PlainLabels):
    name, title, emotions, first_id = "rafdb", "RAF-DB", RAFDB, 1
    about = "7 emotions in RAF-DB's order (ids 1 surprise, 2 fear, 3 disgust, 4 happiness, 5 sadness, 6 anger, 7 neutral)"


class AffectNet(PlainLabels):
    name, title, emotions = "affectnet", "AffectNet", AFFECTNET
    about = "8 emotions in AffectNet's order (ids 0 neutral, 1 happy, 2 sad, 3 surprise, 4 fear, 5 disgust, 6 anger, 7 contempt)"


class DataLabels(PlainLabels):
    """The classes a data set declares (its folders' names, labels.txt or --label-names), in its order."""

    name, title = DATA, "a data-declared label set"
    about = "the data's own classes: its folder names, or labels.txt / --label-names, in that order"

    def __init__(self, names):
        names = tuple(str(n).strip().lower() for n in names)
        problems = check_names(names)
        if problems:
            raise ConfigError(f"the classes {quoted(', '.join(names))}: {problems}")
        self.emotions = names


class FerPlus(LabelSet):
    """FER+'s votes (N, 10), read by ferplus.py; its module docstring explains the label modes. One's
    own images (a folder, a list) have no votes: each has its class, matched by name as PlainLabels'."""

    name, title, emotions = "ferplus", "FER+", FERPLUS
    about = "8 emotions, from the FER+ votes beside the data (fer2013new.csv) or in --labels-file"
    modes = LABEL_MODES

    def annotations(self, data, labels_file=None, fix=None) -> np.ndarray:
        from . import ferplus

        if not self.reads_votes(data):  # (N,) class ids, not (N, 10) votes
            return PlainLabels.annotations(self, data, fix=fix)
        if data.skipped:  # the votes are matched to the data by row order
            raise DataError(f"{data.source}: {data.skipped} bad rows were skipped, so its rows no longer line up with the "
                            "FER+ votes; fix the file instead of --skip-bad-rows")
        return ferplus.read_votes(ferplus.find_votes(data.source, labels_file), data.splits, data.labels)

    def targets(self, rows, mode, where):
        from . import ferplus

        if rows.ndim == 1:  # one's own images' classes: every mode trains on them
            return PlainLabels.targets(self, rows, mode, where)
        t, keep = ferplus.targets(rows, mode)
        soft = None if mode == "majority" else t  # majority's targets are one-hot: plain labels
        return t.argmax(1).astype(np.int64), soft, keep

    def eval_labels(self, rows, where):
        from . import ferplus

        if rows.ndim == 1:
            return PlainLabels.eval_labels(self, rows, where)
        return ferplus.majority_labels(rows), ferplus.top_vote_sets(rows)  # the paper's protocol: the majority emotion


LABEL_SETS = {s.name: s for s in (Fer2013(), FerPlus(), RafDb(), AffectNet())}  # the known sets, by --labels name
LABEL_CHOICES = tuple(LABEL_SETS) + (DATA,)  # --labels' values

EMOTIONS = LABEL_SETS[DEFAULT].emotions  # ferkit.EMOTIONS (public API): the default label set's emotions
COLORS = tuple(COLOR_OF[e] for e in EMOTIONS)


def colors(labels) -> list[str]:
    """Plot colours for a list of emotion names (by meaning: happiness is happy's; grey for a name ferkit does not know)."""
    return [COLOR_OF.get(canonical(e), "#888888") for e in labels]


def canonical(name: str) -> str:
    """The name ferkit compares emotions by: lower case, synonyms folded (happiness -> happy)."""
    n = str(name).strip().lower()
    return SYNONYMS.get(n, n)


# the format characters that reorder the text after them (bidi embeddings, overrides, isolates, marks); the others
# (the zero-width joiner of emoji sequences, a soft hyphen) change nothing a terminal shows around them
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def unprintable(name: str) -> bool:
    """Whether a class name holds what a terminal acts on rather than shows: a control character (an escape code:
    "\\x1b[2J" clears the screen; a line break splits a table's row), a line or paragraph separator, or a bidi
    control (which rewrites the order of what follows). Names are printed as they are (predict's lines, evaluate's
    table). A space of any kind, accents, CJK and emoji pass (str.isprintable refused a no-break space)."""
    return any(unicodedata.category(c) in ("Cc", "Zl", "Zp") or c in BIDI_CONTROLS for c in name)


def check_names(names: tuple[str, ...]) -> str | None:
    """What is wrong with a list of class names for a label set (None if nothing): at least 2 and
    at most MAX_CLASSES, none empty or over MAX_NAME characters, each printable, no two of one meaning (happy and happiness). The one
    check of the names of a model's outputs: --label-names, labels.txt, a data set's classes, a checkpoint's
    labels, an ONNX graph's."""
    if not 2 <= len(names) <= MAX_CLASSES:
        return f"a label set needs 2 to {MAX_CLASSES:,} classes; got {len(names)}"
    if not all(names):
        return "a class name is empty"
    long = next((n for n in names if len(n) > MAX_NAME), None)
    if long is not None:  # (drawn on chart axes and tabled: matplotlib laid out a 1 MB tick label for minutes)
        return f"the class name {quoted(long, 40)!r} is too long; at most {MAX_NAME} characters"
    odd = next((n for n in names if unprintable(n)), None)
    if odd is not None:
        return (f"the class name {odd!r} holds a control character (an escape code, a line break, a bidi override) "
                "that a terminal would act on; rename it")
    seen = {}
    for n in names:
        if canonical(n) in seen:
            return f"{seen[canonical(n)]!r} and {n!r} name one class; merge them or rename one"
        seen[canonical(n)] = n
    return None


def label_set(name: str, names=None) -> LabelSet:
    """A label set by --labels name, e.g. label_set("ferplus"); "data" is built from `names`, the
    data's class names (FerData.names; None: the data have integer labels and no names)."""
    if name == DATA:
        if names is None:
            raise ConfigError("--labels data: the data's labels are integer ids without names; name the classes "
                              "(--label-names a,b,c, or a labels.txt beside the data, one name a line) or pick the "
                              "known set the ids belong to (--labels " + " | --labels ".join(LABEL_SETS) + ")")
        return for_emotions(names)  # a known set where the data's names are exactly its emotions
    if name not in LABEL_SETS:
        raise ConfigError(f"labels must be one of {', '.join(LABEL_CHOICES)}; got {name!r}")
    return LABEL_SETS[name]


def for_emotions(names) -> LabelSet:
    """The label set whose emotions are `names`, in order (a model's labels): a known set, else the
    data-declared set of those names."""
    for s in LABEL_SETS.values():
        if s.emotions == tuple(names):
            return s
    return DataLabels(names)


def class_ids(labels: np.ndarray, names, target: LabelSet, where: str, fix: str | None = None) -> np.ndarray:
    """A data set's labels (N,) as ids of `target`'s emotions (-1, unlabelled, stays -1).

    names: what each data label means (FerData.names); its classes are matched to the target's
    emotions by canonical name, and a class with faces that matches none is a DataError naming
    every such class. None: the labels are integer ids of `target` itself, counted from its first_id.
    fix: what that error advises, in the caller's flags ("": nothing); None: training's (--labels)."""
    labels = np.asarray(labels, np.int64)
    has = labels >= 0
    if names is None:
        ids = labels - target.first_id
        bad = labels[has & ((ids < 0) | (ids >= target.num_classes))]
        if bad.size:
            first = target.first_id
            raise DataError(f"{where}: label {bad[0]} is not an id of {target.title} ({first}..{first + target.num_classes - 1}: "
                            + ", ".join(f"{first + i} {e}" for i, e in enumerate(target.emotions)) + ")"
                            + _advice(fix, "name the data's classes (--label-names or labels.txt) or pick the label set its ids belong to (--labels)"))
        return np.where(has, ids, -1)
    want = {canonical(e): i for i, e in enumerate(target.emotions)}
    table = np.array([want.get(canonical(n), -1) for n in names] + [-1], np.int64)  # [-1]: a safe slot for unlabelled rows
    used = np.unique(labels[has])
    unmatched = [names[i] for i in used if table[i] < 0]
    if unmatched:
        mine = {canonical(names[i]) for i in used}
        fits = [s.name for s in LABEL_SETS.values() if isinstance(s, PlainLabels) and mine <= {canonical(e) for e in s.emotions}]
        train = ((f"{', '.join(fits)} {'has' if len(fits) == 1 else 'have'} them all (--labels {fits[0]}); " if fits else "")
                 + "rename or leave out those classes, or train on the data's own classes (--labels data)")
        raise DataError(f"{where}: its class(es) {', '.join(unmatched)} are not emotions of {target.title} "
                        f"({', '.join(target.emotions)})" + _advice(fix, train))
    return np.where(has, table[np.where(has, labels, -1)], -1)


def _advice(fix: str | None, train: str) -> str:
    """The end of a class_ids error: the caller's fix, else training's."""
    text = train if fix is None else fix
    return f"; {text}" if text else ""


def describe_mapping(names, target: LabelSet, labels: np.ndarray) -> str | None:
    """One line on how a data set's classes become target's outputs, where that is not plain: the
    names matched through a synonym, and the outputs no face trains (None when neither)."""
    has = np.unique(np.asarray(labels)[np.asarray(labels) >= 0])
    if names is None or not has.size:  # no labels at all (a CSV without 'emotion'): training says so, not "no faces of" all
        return None
    renamed = [f"{names[i]} -> {e}" for i in has for e in target.emotions if canonical(e) == canonical(names[i]) and e != names[i]]
    covered = {canonical(names[i]) for i in has}
    empty = [e for e in target.emotions if canonical(e) not in covered]
    parts = ([f"classes matched by meaning: {', '.join(renamed)}"] if renamed else []) + \
            ([f"no faces of {', '.join(empty)} (those outputs are trained only as wrong answers)"] if empty else [])
    return f"labels ({target.name}): " + "; ".join(parts) if parts else None


def labels_of(d: dict) -> tuple[str, ...]:
    """The emotion names of a checkpoint or metrics dict; ones written before label sets existed are FER2013's."""
    return tuple(d.get("labels") or LABEL_SETS[DEFAULT].emotions)
