"""Label sets: the emotions a model predicts, how data rows become its training targets, and what
its faces are scored against — one place for all.

A checkpoint carries its own list of emotion names; everything downstream (evaluate, plots,
report, predict, serve, the web page, ONNX export) asks the model for it, and `for_emotions`
finds its label set again. Two sets are known (`label_set(name)`):

    fer2013  7 emotions, FER2013's label order (0 angry ... 6 neutral): the data file's own labels
    ferplus  the same 7 plus contempt (FER+, Barsoum et al. 2016; index 7): ten votes per face

Adding one (RAF-DB, AffectNet) is one LabelSet subclass listed in LABEL_SETS. The model's width
(ModelSpec.num_classes) comes from here. This module stays light (no torch): the inference core
imports it; FER+'s vote reader (ferplus.py) is imported only when votes are read.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError, DataError

FER2013 = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # also the ids in FER2013 files
FERPLUS = FER2013 + ("contempt",)
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

    @property
    def num_classes(self) -> int:
        """The model's width: one output per emotion (the one source of ModelSpec.num_classes)."""
        return len(self.emotions)

    def annotations(self, data, labels_file=None) -> np.ndarray:
        """What this set knows of each row of `data` (N, ...), aligned with data.splits."""
        raise NotImplementedError

    def targets(self, rows: np.ndarray, mode: str, where: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Training targets of annotation rows for a label mode: (labels (N,) int64, soft targets
        (N, C) float32 or None for plain labels, keep (N,) bool: the faces to train on)."""
        raise NotImplementedError

    def eval_labels(self, rows: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray | None]:
        """What annotation rows are scored against: (labels (N,) int64, -1 = left out of the accuracy;
        top-vote sets (N, C) bool for the most-voted-emotions measure, or None)."""
        raise NotImplementedError


def _labelled(labels: np.ndarray, where: str, then: str) -> np.ndarray:
    # A FER2013 file may come without its 'emotion' column (-1): nothing to train on or score against.
    if (labels < 0).any():
        raise DataError(f"{where} have no 'emotion' labels{then}")
    return np.asarray(labels, np.int64)


class Fer2013(LabelSet):
    name, title, emotions = "fer2013", "FER2013", FER2013
    about = "7 emotions, the data file's labels"

    def annotations(self, data, labels_file=None) -> np.ndarray:
        return data.labels  # the file's own labels; labels_file is FER+'s

    def targets(self, rows, mode, where):
        return _labelled(rows, where, "; train on a labelled file"), None, np.ones(len(rows), bool)  # every mode: plain labels

    def eval_labels(self, rows, where):
        return _labelled(rows, where, ", so accuracy cannot be measured"), None


class FerPlus(LabelSet):
    """FER+'s votes (N, 10), read by ferplus.py; its module docstring explains the label modes."""

    name, title, emotions = "ferplus", "FER+", FERPLUS
    about = "8 emotions, from the FER+ votes beside the data (fer2013new.csv) or in --labels-file"
    modes = LABEL_MODES

    def annotations(self, data, labels_file=None) -> np.ndarray:
        from . import ferplus

        if data.skipped:  # the votes are matched to the data by row order
            raise DataError(f"{data.source}: {data.skipped} bad rows were skipped, so its rows no longer line up with the "
                            "FER+ votes; fix the file instead of --skip-bad-rows")
        return ferplus.read_votes(ferplus.find_votes(data.source, labels_file), data.splits)

    def targets(self, rows, mode, where):
        from . import ferplus

        t, keep = ferplus.targets(rows, mode)
        soft = None if mode == "majority" else t  # majority's targets are one-hot: plain labels
        return t.argmax(1).astype(np.int64), soft, keep

    def eval_labels(self, rows, where):
        from . import ferplus

        return ferplus.majority_labels(rows), ferplus.top_vote_sets(rows)  # the paper's protocol: the majority emotion


LABEL_SETS = {s.name: s for s in (Fer2013(), FerPlus())}  # by --labels name

EMOTIONS = LABEL_SETS[DEFAULT].emotions  # ferkit.EMOTIONS (public API): the default label set's emotions
COLORS = tuple(COLOR_OF[e] for e in EMOTIONS)


def colors(labels) -> list[str]:
    """Plot colours for a list of emotion names (grey for a name ferkit does not know)."""
    return [COLOR_OF.get(e, "#888888") for e in labels]


def label_set(name: str) -> LabelSet:
    """A known label set by name, e.g. label_set("ferplus")."""
    if name not in LABEL_SETS:
        raise ConfigError(f"labels must be one of {', '.join(LABEL_SETS)}; got {name!r}")
    return LABEL_SETS[name]


def for_emotions(names) -> LabelSet:
    """The label set whose emotions are `names`, in order (a model's labels)."""
    for s in LABEL_SETS.values():
        if s.emotions == tuple(names):
            return s
    known = "; ".join(f"{s.name}: {', '.join(s.emotions)}" for s in LABEL_SETS.values())
    raise ConfigError(f"the model's emotions must be those of a label set ({known}); got {', '.join(names)}")


def labels_of(d: dict) -> tuple[str, ...]:
    """The emotion names of a checkpoint or metrics dict; ones written before label sets existed are FER2013's."""
    return tuple(d.get("labels") or LABEL_SETS[DEFAULT].emotions)
