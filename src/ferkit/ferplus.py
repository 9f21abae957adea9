"""FER+ labels: ten annotators' votes per FER2013 face, turned into training targets and test labels.

FER+ (Barsoum et al. 2016, "Training Deep Networks for Facial Expression Recognition with
Crowd-Sourced Label Distribution") relabelled every FER2013 face with 10 votes over 8 emotions
(adding contempt) plus `unknown` and `NF` (not a face). Its file, `fer2013new.csv`, is aligned with
FER2013's file **by row order**; its `Image name` numbers are FER+'s own count and are never used.

Votes are kept in ferkit's FER+ label order (labels.FERPLUS: angry, disgust, fear, happy, sad,
surprise, neutral, contempt), then unknown and NF: shape (N, 10).

Training modes (`--label-mode`), as in the FER+ paper and its reference code:
    majority      one-hot on the emotion with more than half of the votes (single votes are
                  dropped first as outliers); faces without such a majority are dropped
    probability   the vote distribution of the top emotions (at most 3, covering 75% of the votes);
                  each time a face is seen, one label is drawn from it ("probabilistic label drawing")
    crossentropy  the same distribution, used as soft targets of the cross-entropy
    multi_target  every emotion with at least 30% of the votes counts as right: the loss is
                  -log(max over those emotions of p)
Faces whose result is unknown or not a face are dropped in every mode. Test faces are scored on
their majority emotion (the paper's protocol), see `majority_labels`.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from pathlib import Path

import numpy as np

from .errors import DataError
from .files import check_regular_file
from .labels import FERPLUS, LABEL_MODES

MODES = LABEL_MODES
DEFAULT_MODE = "crossentropy"  # with probability, the paper's best (85.0% / 85.0% vs majority 83.9%)
FILE_NAME = "fer2013new.csv"
SOURCE = "https://github.com/microsoft/FERPlus"  # where FILE_NAME comes from
COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")
# For each FER+ label of ferkit (angry, disgust, fear, happy, sad, surprise, neutral, contempt, unknown, NF):
# its column among the file's vote columns.
_ORDER = [4, 5, 6, 1, 3, 2, 0, 7, 8, 9]
N_EMOTIONS = len(FERPLUS)  # the votes' emotion columns; unknown and NF follow
_USAGES = {"Training": 0, "PublicTest": 1, "PrivateTest": 2}  # = data.SPLITS indices


def find_votes(data_path: str | Path, labels_file: str | Path | None = None) -> Path:
    """The FER+ vote file: labels_file if given, else fer2013new.csv (or .csv.gz) beside the FER2013 data."""
    p = Path(labels_file) if labels_file else Path(data_path).parent / FILE_NAME
    if not labels_file and not p.exists() and p.with_name(FILE_NAME + ".gz").exists():
        p = p.with_name(FILE_NAME + ".gz")  # gzipped as FER2013's file may be
    if not p.exists():
        where = "--labels-file" if labels_file else f"beside {data_path}"
        raise DataError(f"{p}: no FER+ vote file ({where}). Get fer2013new.csv from {SOURCE} "
                        "and put it beside the FER2013 file, or pass --labels-file PATH")
    check_regular_file(p, f"FER+'s vote file with --labels-file PATH (fer2013new.csv from {SOURCE})", DataError)
    return p


# FER+'s majority emotion is FER2013's emotion on 68% of the faces of FER+'s own two files (63% in the
# worst block of 500 rows); rows out of line agree on 18%, as chance does (FER2013's classes' shares).
AGREEMENT, BLOCK, MIN_FACES = 0.4, 500, 100
MAX_VOTES = 2**24  # float32 counts whole numbers exactly up to here
# FER+'s annotators a face: its file's rows add up to 10 (one row 9), so more is no FER+ row (a typo, 80 for 8, or
# two rows' votes added up), which the modes' shares of the total took as the votes of more annotators, unsaid
ANNOTATORS = 10


def _open_text(path: Path):
    """The vote file as text, gunzipped where it is a gzip file (whatever its name), as FER2013's CSV may be."""
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    if gz:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def read_votes(path: str | Path, splits: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """Votes (N, 10) float32 in ferkit's FER+ order, checked row by row against the FER2013 rows'
    splits (0 Training, 1 PublicTest, 2 PrivateTest): the two files must hold the same rows in the same order.
    With the FER2013 rows' emotions (labels, -1 = none), each block of rows is checked to agree with the
    votes as FER+'s file does (check_aligned): rows reordered within a split keep every Usage."""
    path = Path(path)
    rows, lines = [], []  # lines: each row's first line in the file (blank lines and quoted line breaks counted)
    try:
        with _open_text(path) as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path}: the file is empty; give FER+'s vote file (fer2013new.csv from {SOURCE}, "
                                f"header 'Usage,Image name,{','.join(COLUMNS)}') with --labels-file PATH")
            header = [h.strip() for h in header]
            missing = [c for c in ("Usage", *COLUMNS) if c not in header]
            if missing:
                raise DataError(f"{path}, line 1: missing column(s) {', '.join(missing)}; expected FER+'s header "
                                f"'Usage,Image name,{','.join(COLUMNS)}'")
            twice = [c for c in ("Usage", *COLUMNS) if header.count(c) > 1]  # which one holds the votes?
            if twice:
                raise DataError(f"{path}, line 1: column(s) {', '.join(twice)} appear more than once (header is "
                                f"{','.join(header)[:200]!r}); keep one of each")
            i_use, cols = header.index("Usage"), [header.index(c) for c in COLUMNS]
            end = reader.line_num  # the header's last line
            for row in reader:
                lineno, end = end + 1, reader.line_num
                if not row:
                    continue
                if len(row) > len(header):  # a field too many before the votes shifted them a column unsaid
                    raise DataError(f"{path}, line {lineno}: {len(row)} fields, more than the header's {len(header)}; "
                                    f"got {','.join(row)[:120]!r}; each row holds Usage, Image name and the 10 vote "
                                    "counts under the header's columns (an Image name with a comma must be quoted)")
                try:
                    usage = _USAGES[row[i_use].strip()]
                    votes = [float(row[c]) for c in cols]
                except (KeyError, IndexError, ValueError):
                    raise DataError(f"{path}, line {lineno}: expected a Usage (Training/PublicTest/PrivateTest) and 10 vote "
                                    f"counts; got {','.join(row)[:120]!r}") from None
                rows.append((usage, votes))
                lines.append(lineno)
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e}); save FER+'s vote file as a UTF-8 CSV") from None
    except (EOFError, zlib.error) as e:
        raise DataError(f"{path}: a cut or damaged gzip file ({e}); get FER+'s vote file again") from None
    except (OSError, csv.Error) as e:
        raise DataError(f"{path}: cannot read as a FER+ vote file ({e})") from None
    if len(rows) != len(splits):
        raise DataError(f"{path} has {len(rows)} rows but the FER2013 data has {len(splits)}: FER+ votes are aligned "
                        "by row order, so both files must hold the same rows (use the FER2013 file FER+ was made for, "
                        "unfiltered, without --skip-bad-rows)")
    usages = np.array([u for u, _ in rows], np.int8)
    bad = np.flatnonzero(usages != splits)
    if len(bad):
        i = int(bad[0])
        names = list(_USAGES)
        raise DataError(f"{path}, line {lines[i]}: Usage is {names[usages[i]]} but row {i + 1} of the FER2013 data is "
                        f"{names[splits[i]]}; the files are not row-aligned ({len(bad)} rows disagree)")
    votes = np.array([v for _, v in rows], np.float64)[:, _ORDER]  # float32 once checked: 1e40 is its inf
    # nan made the loss nan (blamed on --lr), inf dropped the face; fractions (shares, not counts) fell
    # under the single-vote cut of _process and every face was dropped ("0 training faces")
    bad = ~np.isfinite(votes) | (votes < 0) | (votes != np.round(votes))
    if bad.any():
        i = int(np.flatnonzero(bad.any(1))[0])
        raise DataError(f"{path}, line {lines[i]}: a vote count is not a whole number >= 0 "
                        f"({', '.join(f'{v:g}' for v in votes[i][bad[i]])}); FER+'s file counts each emotion's votes of 10 annotators")
    bad = votes > MAX_VOTES
    if bad.any():
        i = int(np.flatnonzero(bad.any(1))[0])
        raise DataError(f"{path}, line {lines[i]}: a vote count is over {MAX_VOTES:,} ({', '.join(f'{v:.10g}' for v in votes[i][bad[i]])}); "
                        "FER+'s file counts each emotion's votes of 10 annotators")
    over = np.flatnonzero(votes.sum(1) > ANNOTATORS)
    if len(over):
        i = int(over[0])
        counts = ", ".join(f"{COLUMNS[c]} {v:g}" for c, v in zip(_ORDER, votes[i]) if v)
        rows = f"{len(over):,} such row{'s' if len(over) > 1 else ''} in the file"
        raise DataError(f"{path}, line {lines[i]}: the vote counts add up to {votes[i].sum():g} ({counts}), more than FER+'s "
                        f"{ANNOTATORS} annotators gave a face ({rows}); fix the counts, or get {FILE_NAME} from {SOURCE} again")
    votes = votes.astype(np.float32)
    if labels is not None:
        check_aligned(path, votes, labels, lines)
    return votes


def check_aligned(path: Path, votes: np.ndarray, labels: np.ndarray, lines: list[int] | None = None) -> None:
    """Refuse votes whose majority emotion agrees with the FER2013 rows' emotion (labels, -1 = none) no more
    than chance does in a block of BLOCK rows (the last block takes the rest) with MIN_FACES faces to compare:
    such rows are out of line (reordered or sorted within a split, a row dropped here and one added there),
    which the Usage check cannot see, and every face would train on another face's votes. lines: each row's
    line in the file (default: row i on line i + 2)."""
    lines = lines or [i + 2 for i in range(len(votes))]
    majority = majority_labels(votes)
    both = (labels >= 0) & (majority >= 0) & (majority < len(FERPLUS) - 1)  # FER2013 has no contempt
    starts = list(range(0, max(len(votes) - BLOCK, 0) + 1, BLOCK)) if len(votes) >= BLOCK else [0]
    for k, a in enumerate(starts):
        b = starts[k + 1] if k + 1 < len(starts) else len(votes)
        n = int(both[a:b].sum())
        if n < MIN_FACES:
            continue
        share = float((majority[a:b] == labels[a:b])[both[a:b]].mean())
        if share < AGREEMENT:
            raise DataError(f"{path}, lines {lines[a]}-{lines[b - 1]}: the votes' majority emotion is the FER2013 file's emotion for "
                            f"{share:.0%} of these {n} faces, as by chance (FER+'s own files: 68%); the rows are out of line "
                            "with the FER2013 data (reordered, sorted, or rows dropped and added); give both files in "
                            "their original row order (an emotion column that is not the faces' own: leave it out)")


def _counted(votes: np.ndarray) -> np.ndarray:
    """The votes that count, float64: FER+'s reference algorithm drops single votes as outliers."""
    return np.where(votes <= 1, 0, votes).astype(np.float64)


def _process(votes: np.ndarray, mode: str) -> np.ndarray:
    """Votes (N, 10) -> weights (N, 10) over the 10 columns (FER+ reference algorithm), all faces at once; a
    dropped face's weight is all on unknown. Face by face in Python it cost ~3.5 s a mode on FER+'s 32,298 rows."""
    raw = _counted(votes)  # (a copy: taken votes are zeroed in it)
    total = raw.sum(1)
    if mode in ("probability", "crossentropy"):
        # Take the most-voted emotions (ties together) until 75% of the votes or 3 emotions are in;
        # stop at a tie with unknown/NF, keeping the emotions already taken. Each pass is one round of
        # the reference's loop for the faces still in it (a few passes: each takes an emotion or stops).
        out = np.zeros_like(raw)
        taken, count = np.zeros(len(raw)), np.zeros(len(raw), np.int64)
        valid, dropped = np.ones(len(raw), bool), np.zeros(len(raw), bool)
        while (going := (taken < 0.75 * total) & (count < 3) & valid).any():
            top = raw.max(1)
            tied = (raw == top[:, None]) & going[:, None]
            emotions = tied[:, :N_EMOTIONS]  # before unknown/NF in the reference's column order: all taken
            out[:, :N_EMOTIONS][emotions] = raw[:, :N_EMOTIONS][emotions]
            raw[:, :N_EMOTIONS][emotions] = 0
            taken += top * emotions.sum(1)
            count += emotions.sum(1)
            stop = tied[:, N_EMOTIONS:].any(1)  # unknown or NF among the most voted
            dropped |= stop & ~(out[:, :N_EMOTIONS] > 0).any(1)  # ... before any emotion: the face is theirs
            valid &= ~stop
        dropped |= (out.sum(1) <= 0.5 * total) | (count > 3)
    elif mode == "multi_target":
        out = np.where(raw >= 0.3 * total[:, None], raw, 0)
        dropped = out.sum(1) <= 0.5 * total
    else:
        raise ValueError(f"label mode must be one of {', '.join(MODES)}; got {mode!r}")
    unknown = np.zeros(10)
    unknown[8] = 1
    return np.where(dropped[:, None], unknown, out / np.where(dropped, 1, out.sum(1))[:, None])


def targets(votes: np.ndarray, mode: str = DEFAULT_MODE) -> tuple[np.ndarray, np.ndarray]:
    """Training targets (N, 8) float32 and the faces to keep (N,) bool for a label mode.

    majority/probability/crossentropy: a distribution over the 8 emotions (one-hot for majority);
    multi_target: 1 for each accepted emotion, 0 elsewhere. Dropped faces get all zeros."""
    if mode not in MODES:
        raise ValueError(f"label mode must be one of {', '.join(MODES)}; got {mode!r}")
    if mode == "majority":  # one-hot: the rule is majority_labels', for all faces at once
        labels = majority_labels(votes)
        keep = labels >= 0
        return np.eye(N_EMOTIONS, dtype=np.float32)[np.maximum(labels, 0)] * keep[:, None], keep
    w = _process(votes, mode) if len(votes) else np.zeros((0, 10))
    keep = w.argmax(1) < N_EMOTIONS
    t = np.where(keep[:, None], w[:, :N_EMOTIONS], 0)
    if mode == "multi_target":
        t = (t > 0).astype(np.float32)
    else:
        t = t / np.maximum(t.sum(1, keepdims=True), 1e-12)
    return t.astype(np.float32), keep


def majority_labels(votes: np.ndarray) -> np.ndarray:
    """Each face's majority emotion (N,) int64 in ferkit's FER+ order, -1 where FER+'s test protocol
    has none (no emotion with more than half of the non-single votes, or unknown/not a face)."""
    # _process's majority rule over the whole array at once: face by face it cost check_aligned ~1 s on
    # every load of FER+'s 32,298 rows. More than half of the votes is one column, so argmax has no tie.
    raw = _counted(votes)
    top = raw.argmax(1)
    has = (raw.max(1) > 0.5 * raw.sum(1)) & (top < N_EMOTIONS)
    return np.where(has, top, -1).astype(np.int64)


def top_vote_sets(votes: np.ndarray) -> np.ndarray:
    """(N, 8) bool: the emotions that share the most votes of each face (all False where unknown or
    not-a-face has strictly more votes than every emotion)."""
    top = votes.max(1, keepdims=True)
    return (votes[:, :N_EMOTIONS] == top) & (top > 0)
