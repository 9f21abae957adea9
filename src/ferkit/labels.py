"""The emotions a model predicts (its label set), their names and plot colours — one place for all.

A checkpoint carries its own list of emotion names; everything downstream (evaluate, plots,
report, predict, serve, the web page, ONNX export) asks the model for it. Two sets are known:

    fer2013  7 emotions, FER2013's label order (0 angry ... 6 neutral)
    ferplus  the same 7 plus contempt (FER+, Barsoum et al. 2016); index 7
"""

FER2013 = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FERPLUS = FER2013 + ("contempt",)
LABEL_SETS = {"fer2013": FER2013, "ferplus": FERPLUS}

EMOTIONS = FER2013  # FER2013's emotions: the default label set, and the ids in FER2013 files
NUM_CLASSES = len(EMOTIONS)

# One colour per emotion, used by every plot, the annotated images and the web page.
COLOR_OF = {"angry": "#d62728", "disgust": "#8c564b", "fear": "#9467bd", "happy": "#ffbf00", "sad": "#1f77b4",
            "surprise": "#ff7f0e", "neutral": "#7f7f7f", "contempt": "#17becf"}
COLORS = tuple(COLOR_OF[e] for e in EMOTIONS)


def colors(labels) -> list[str]:
    """Plot colours for a list of emotion names (grey for a name ferkit does not know)."""
    return [COLOR_OF.get(e, "#888888") for e in labels]


def label_set(name: str) -> tuple[str, ...]:
    """The emotion names of a known label set ('fer2013' or 'ferplus')."""
    if name not in LABEL_SETS:
        raise ValueError(f"unknown label set {name!r}; choose one of {', '.join(LABEL_SETS)}")
    return LABEL_SETS[name]


def labels_of(ckpt: dict) -> tuple[str, ...]:
    """A checkpoint's emotion names; checkpoints written before label sets existed are FER2013 models."""
    return tuple(ckpt.get("labels") or FER2013)

