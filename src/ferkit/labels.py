"""The seven FER2013 emotions: ids, names and plot colours (one place for all three)."""

EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES = len(EMOTIONS)
# One colour per emotion, used by every plot, the annotated images and the web page.
COLORS = ("#d62728", "#8c564b", "#9467bd", "#ffbf00", "#1f77b4", "#ff7f0e", "#7f7f7f")


def emotion_id(name: str) -> int:
    """Map an emotion name (any case) to its id, or raise ValueError listing the valid names."""
    key = name.strip().lower()
    if key not in EMOTIONS:
        raise ValueError(f"unknown emotion {name!r}; expected one of {', '.join(EMOTIONS)}")
    return EMOTIONS.index(key)
