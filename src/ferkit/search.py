"""Hyper-parameter search with Optuna, scored by hold-out or k-fold cross-validation (paper Tables 1-2).

    ferkit search --model shallow --epochs 5 --trials 20 [--cv 5] [--param convs.0.dropout=uniform:0:0.5]

By default the search tunes what the paper tuned: learning rate, L2 strength and the hidden
units of each FC layer. `--param NAME=KIND:ARGS` adds (or replaces) one: NAME is a TrainConfig
field (lr, l2, batch_size, label_smoothing...) or a dotted model spec path (fcs.0.units,
convs.1.dropout, hog.orientations); KIND is one of

    loguniform:LO:HI   uniform:LO:HI   int:LO:HI   categorical:A,B,C

Each trial is a short `train.fit` in OUT/trials/<n>/ (one run folder per fold with --cv). Its
score is the validation accuracy of the best epoch: on the PublicTest split (hold-out, the
default) or averaged over the folds of a stratified k-fold split of the training data.

The study lives in an Optuna RDB storage (SQLite file OUT/search.db by default), so a search
killed at any point resumes when rerun, and several workers given the same storage URL share
one study: the SQLite file on one machine, or a PostgreSQL server (`--storage
postgresql://user:pass@host/db`, through psycopg 3: `pip install 'ferkit[postgres]'`) across
machines. Running trials send a heartbeat; one silent for 3 heartbeats (a killed worker) is
marked FAIL and retried with the same parameters, continuing from its last checkpoint.
`--trials N` counts completed trials of the whole study. Results: search.csv / search.json
(trials ranked by accuracy) and best.yaml, a training config for `ferkit train --config`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import random
import sqlite3
import time
import warnings
from dataclasses import dataclass, fields, replace
from pathlib import Path

try:
    import fcntl  # POSIX: the lock that lets one search at a time open and check the study of an SQLite file
except ImportError:  # Windows
    fcntl = None

import numpy as np

from .config import TrainConfig, coerce, load_yaml, override_spec, spec_layers, spec_paths
from .data import SPLITS, FerData, say_leaked, subset_rows
from .errors import ConfigError, FerkitError, OutputError, first_line, shell_word
from .files import missing_folders, remove_empty, write_fix, write_output
from .outputs import csv_text
from .runs import LAST, TRAIN_FILES

log = logging.getLogger(__name__)

KINDS = ("loguniform", "uniform", "int", "categorical")
# the data's classes and its drawn split are the data, not hyper-parameters (a trial must not pick its val faces)
NOT_TUNABLE = {"model", "data", "skip_bad_rows", "overrides", "device", "threads", "train_subset", "label_names", "split_seed",
               "val_fraction", "test_fraction"}
# Spec fields that decide the faces' shape: the data are read once, at the model's own shape
DATA_SHAPE_FIELDS = {"in_size", "channels"}
MAX_INT_PROBES = 64  # an int range this short is checked value by value (each check builds a spec, no net)
RESULTS = {"csv": "search.csv", "json": "search.json", "best": "best.yaml"}  # what write_results writes in --out
SEARCH_COLUMNS = ("trial", "value", "state")  # search.csv's first columns, the parameters' after them: report knows the table by them
MAX_HEARTBEAT = 3600  # seconds; a killed trial is retried after 3 silent heartbeats
# Seconds a worker waits for another's lock on an SQLite storage (workers take turns writing to it), and
# after how many it says that it waits: a lock held that long is another program's (an open sqlite3 shell)
LOCK_WAIT = 60
LOCK_NOTICE = 5
LOCKED = "database is locked"  # SQLite's error for a lock waited for in vain
FULL = "database or disk is full"  # SQLite's error for a write that found no room (SQLITE_FULL)
MACHINE_FIELDS = {"data", "skip_bad_rows", "device", "threads"}  # may differ between workers of one study
TRAIN_FIELDS = [f.name for f in fields(TrainConfig)]
# TrainConfig fields newer than some studies, with the defaults those studies ran with
NEW_FIELDS_DEFAULTS = {"label_names": None, "split_seed": 0, "val_fraction": 0.1, "test_fraction": 0.1}


# ---------------------------------------------------------------- search space


@dataclass
class Param:
    """One tuned field: NAME=KIND:ARGS as given on the command line."""

    name: str  # TrainConfig field or dotted model spec path
    kind: str  # loguniform | uniform | int | categorical
    args: tuple  # (lo, hi) or the choices
    text: str = ""

    def suggest(self, trial):
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.args))
        if self.kind == "int":
            return trial.suggest_int(self.name, *self.args)
        return trial.suggest_float(self.name, *self.args, log=self.kind == "loguniform")

    def probes(self) -> list:
        """Values checked before the search starts: every choice, every value of a short int range
        (convs.0.pool=int:0:2 has an invalid 1 between two valid ends), or both ends."""
        if self.kind == "int" and self.args[1] - self.args[0] <= MAX_INT_PROBES:
            return list(range(self.args[0], self.args[1] + 1))
        return list(self.args)


def parse_param(text: str) -> Param:
    """'lr=loguniform:1e-4:1e-2' -> Param; a ConfigError saying what is wrong and the right form."""
    import yaml

    form = "expected NAME=KIND:ARGS with KIND loguniform:LO:HI, uniform:LO:HI, int:LO:HI or categorical:A,B,C"
    name, eq, rest = text.partition("=")
    name, rest = name.strip(), rest.strip()
    kind, _, args = rest.partition(":")
    if not eq or not name or not args:
        raise ConfigError(f"--param {text!r}: {form}, e.g. --param lr=loguniform:1e-4:1e-2")
    if kind not in KINDS:
        raise ConfigError(f"--param {text!r}: unknown kind {kind!r}; {form}")
    if kind == "categorical":
        choices = f"--param {text!r}: choices must be numbers, true/false, null or words, e.g. categorical:256,512,1024"
        try:
            values = [load_yaml(v) if v.strip() else "" for v in args.split(",")]
        except (yaml.YAMLError, RecursionError):  # e.g. categorical:[256,512]; 3000 '[' nest past Python's stack
            raise ConfigError(choices) from None
        if any(not (v is None or isinstance(v, (bool, int, float, str))) for v in values):
            raise ConfigError(choices)
        return Param(name, kind, tuple(values), text)
    parts = args.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        lo, hi = (int(p) for p in parts) if kind == "int" else (float(p) for p in parts)
    except ValueError:
        example = "int:1:4" if kind == "int" else f"{kind}:1e-4:1e-2"
        raise ConfigError(f"--param {text!r}: {kind} takes two {'integers' if kind == 'int' else 'numbers'} LO:HI, e.g. {name}={example}") from None
    if not lo < hi:
        raise ConfigError(f"--param {text!r}: LO ({lo}) must be below HI ({hi})")
    if kind == "loguniform" and lo <= 0:
        raise ConfigError(f"--param {text!r}: loguniform needs LO > 0 (log scale); use uniform for a range that includes 0")
    return Param(name, kind, (lo, hi), text)


def default_params(cfg: TrainConfig) -> list[Param]:
    """The paper's search space (Tables 1-2): learning rate, L2 strength, hidden units of each FC layer."""
    from .model import resolve_spec

    texts = ["lr=loguniform:1e-4:1e-2", "l2=loguniform:1e-7:1e-3"]
    texts += [f"fcs.{i}.units=categorical:256,512,1024" for i in range(len(resolve_spec(cfg.model, cfg.overrides).fcs))]
    return [parse_param(t) for t in texts]


def search_space(cfg: TrainConfig, texts: list[str] | None, defaults: bool = True) -> list[Param]:
    """Default params (unless defaults=False) updated by the --param texts; checked against cfg."""
    params = {p.name: p for p in (default_params(cfg) if defaults else [])}
    for t in texts or []:
        p = parse_param(t)
        params[p.name] = p
    if not params:
        raise ConfigError("nothing to tune: give --param NAME=KIND:ARGS (or leave out --no-default-params)")
    # a fixed --freeze over the model's layers, or an --init-from of no file, failed every trial after the data were
    # read; checked before the params' values, whose checks would blame the first param
    from .train import check_freeze, check_init_from, model_spec

    if "freeze" not in params:
        check_freeze(cfg, model_spec(cfg))
    if "init_from" not in params:
        check_init_from(cfg.init_from)
    check_params(cfg, list(params.values()))
    return list(params.values())


def apply(cfg: TrainConfig, values: dict) -> TrainConfig:
    """cfg with the values set: TrainConfig fields directly, dotted spec paths via cfg.overrides."""
    d = cfg.to_dict()
    overrides = dict(d["overrides"])
    for name, v in values.items():
        if name in TRAIN_FIELDS:
            d[name] = v
        else:
            overrides[name] = v
    d["overrides"] = overrides
    return TrainConfig.from_dict(d)


def check_params(cfg: TrainConfig, params: list[Param]) -> None:
    """Every param names a tunable field, its values have the field's type, and each value gives a valid config."""
    from .model import resolve_spec
    from .train import check_freeze, check_init_from, model_spec

    spec = resolve_spec(cfg.model, cfg.overrides).to_dict()
    for p in params:
        if p.name in NOT_TUNABLE:
            how = "--set FIELD=VALUE" if p.name == "overrides" else "--" + p.name.replace("_", "-")  # (no --overrides flag)
            raise ConfigError(f"--param {p.text}: {p.name} cannot be tuned; set it with {how} instead")
        if p.name in DATA_SHAPE_FIELDS:
            raise ConfigError(f"--param {p.text}: {p.name} cannot be tuned (the faces are read once, at the model's input "
                              f"shape); run one search for each, with --set {p.name}=VALUE")
        if p.name in TRAIN_FIELDS:
            current = getattr(cfg, p.name)
        else:
            current = _spec_value(spec, p)
        values = []
        for v in p.probes():
            fits, v = _same_type(current, v)
            if not fits:
                raise ConfigError(f"--param {p.text}: {p.name} takes {type(current).__name__} values, not {v!r}"
                                  + ("; use int:LO:HI or categorical" if isinstance(current, int) and not isinstance(current, bool) else ""))
            try:
                c = apply(cfg, {p.name: v})
                check_freeze(c, model_spec(c))  # (--param freeze=int:0:9 failed the trials of 4..9 one by one)
                check_init_from(c.init_from)
            except ConfigError as e:
                raise ConfigError(f"--param {p.text}: the value {v!r} gives an invalid config: {e}") from None
            values.append(v)
        if p.kind == "categorical":  # the trials (and best.yaml) get 0.001, not YAML 1.1's string '1e-3'
            p.args = tuple(values)


def _spec_value(spec: dict, p: Param):
    # (the examples are of this model's sections: hog.orientations was suggested for a model without HOG, whose
    # --param for it was then refused in turn)
    paths = spec_paths(spec, conv="dropout", hog="orientations")
    such = f" such as {paths}" if paths else ""
    hint = (f"--param {p.text}: {p.name!r} is neither a training field ({', '.join(sorted(set(TRAIN_FIELDS) - NOT_TUNABLE))}) "
            f"nor a model spec path{such} (this model has {spec_layers(spec)})")
    node = spec
    for part in p.name.split("."):
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError):
            if isinstance(node, list):  # a layer number the list has not: override_spec's error says its length
                override_spec(spec, {p.name: None}, "--param")
            raise ConfigError(hint) from None
    if isinstance(node, (dict, list)):
        raise ConfigError(hint + f"; {p.name!r} is a whole section, name one of its fields")
    override_spec(spec, {p.name: node}, "--param")  # the same path resolution train.fit uses
    return node


def _same_type(current, v) -> tuple[bool, object]:
    """(fits, value) for a value of the field whose value is now `current`: numbers as config.coerce
    takes them (1e-3 is a string to YAML 1.1, as --set and config files give it: it becomes 0.001)."""
    if current is None:
        return True, v
    if isinstance(current, bool) or isinstance(v, bool):
        return isinstance(current, bool) and isinstance(v, bool), v
    if isinstance(current, (int, float)):
        return coerce(v, type(current))
    return isinstance(v, type(current)), v


# ---------------------------------------------------------------- scoring one configuration


def cv_folds(labels: np.ndarray, k: int, seed: int = 0, names=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold (train index, validation index) pairs, the same for every trial; names: what the
    labels stand for, for the warning on classes with fewer images than folds."""
    from sklearn.model_selection import StratifiedKFold

    if k < 2:
        raise ConfigError(f"--cv {k}: needs at least 2 folds")
    counts = np.bincount(labels[labels >= 0])
    if counts.max(initial=0) < k:
        raise ConfigError(f"--cv {k}: every class has fewer than {k} training images; use fewer folds")
    if rare := [f"{names[c] if names else c} ({n})" for c, n in enumerate(counts) if 0 < n < k]:  # (sklearn's warning, silenced)
        log.warning(f"--cv {k}: {', '.join(rare)} ha{'ve' if len(rare) > 1 else 's'} fewer than {k} training images, so some "
                    "folds train without them and score them as wrong answers; use fewer folds, or give them more images")
    with warnings.catch_warnings():  # sklearn warns when a rare class has fewer members than folds
        warnings.simplefilter("ignore", UserWarning)
        return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels))


def fold_data(images: np.ndarray, labels: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray, source: str = "",
              names=FerData.names, kind: str = FerData.kind) -> FerData:
    """A FerData whose train split is images[train_idx] and val split images[val_idx] (for train.fit);
    names, kind: what the labels stand for and where they came from (the data's own; default FER2013's)."""
    idx = np.concatenate([train_idx, val_idx])
    splits = np.concatenate([np.zeros(len(train_idx), np.int8), np.ones(len(val_idx), np.int8)])
    return FerData(images[idx], labels[idx], splits, source, names=names, kind=kind)


def train_images(data: FerData, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """The training split, cut to cfg.train_subset as train.fit does (data.subset_rows)."""
    x, y = data.split("train")
    if not cfg.train_subset:  # (no copy of every image)
        return x, y
    pick = subset_rows(y, cfg.train_subset, cfg.seed)
    return x[pick], y[pick]


def score(cfg: TrainConfig, data: FerData, run_dir: Path, folds=None, resume: bool = False,
          go_on: str | None = None) -> tuple[float, dict]:
    """Validation accuracy of cfg at its best epoch: on data's val split, or averaged over the folds.

    With folds, each fold trains in run_dir/fold<k>; the fold curves are averaged per epoch and
    the best epoch of the mean curve is taken (one epoch count for all folds)."""
    from .train import fit

    if folds is None:
        runs = [(Path(run_dir), cfg, data)]
    else:
        x, y = train_images(data, cfg)
        sub = replace(cfg, train_subset=0)
        runs = [(Path(run_dir) / f"fold{k}", sub, fold_data(x, y, tr, va, f"{data.source} [fold {k + 1}/{len(folds)}]", data.names,
                                                           data.kind))
                for k, (tr, va) in enumerate(folds)]
    curves = []
    for d, c, fd in runs:
        if resume and not (d / LAST).exists():
            _start_over(d)
        history = fit(c, d, resume=resume and (d / LAST).exists(), data=fd, progress=False, go_on=go_on)
        curves.append([r["val_acc"] for r in history])
    mean = np.mean(np.asarray(curves, np.float64), axis=0)
    best = int(np.nanargmax(mean))
    info = {"epoch": best + 1}
    if folds is not None:
        info["fold_acc"] = [round(float(c[best]), 5) for c in curves]
    return float(mean[best]), info


def _start_over(run_dir: Path) -> None:
    """Clear a retried trial's folder that holds no last.pt to go on from: a full disk or a kill between its first
    epoch's best.pt and last.pt left that best.pt, and fit refuses a new run over it (the retry failed the trial).
    The folder is the search's own, and the trial trains from its first epoch again."""
    for name in TRAIN_FILES:
        if (run_dir / name).is_file():
            (run_dir / name).unlink()


# ---------------------------------------------------------------- the study


def default_storage(out: str | Path) -> str:
    return f"sqlite:///{(Path(out) / 'search.db').resolve()}"


def storage_url(storage: str) -> str:
    """The SQLAlchemy URL of a --storage URL: postgresql:// and postgres:// go through psycopg 3
    (ferkit[postgres]); SQLAlchemy's default for them, psycopg2, is not installed."""
    scheme, _, rest = storage.partition("://")
    if scheme not in ("postgresql", "postgres", "postgresql+psycopg"):
        return storage
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise FerkitError(f"--storage {shown(storage)}: PostgreSQL needs the psycopg driver: pip install 'ferkit[postgres]'") from None
    return "postgresql+psycopg://" + rest


def shown(storage: str) -> str:
    """The storage URL with its password hidden, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(storage).render_as_string(hide_password=True)
    except Exception:  # not a URL: nothing to hide
        return storage


def open_study(storage: str, study_name: str, heartbeat: int = 30):
    """Create or load the study (direction maximize) on an RDB storage with heartbeats and retries."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # run_search logs each trial itself
    url = storage_url(storage)
    if url in ("sqlite://", "sqlite:///", "sqlite:///:memory:"):  # each connection would see a database of its own, without tables
        raise ConfigError(f"--storage {storage}: an in-memory database keeps no study; give a file, sqlite:///search.db")
    db = None
    if url.startswith("sqlite"):
        db = _sqlite_file(url)
        if db:
            _wait_for_lock(db, storage)
            _refuse_foreign_sqlite(db, storage)
        engine = {"connect_args": {"timeout": LOCK_WAIT}}
    else:  # a server: drop dead pooled connections; give up on an unreachable host after 10 s
        engine = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10} if url.startswith("postgresql+psycopg") else {}}
    try:
        for attempt in range(5):  # workers started together race to create the schema: the loser retries
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    rdb = optuna.storages.RDBStorage(
                        url, engine_kwargs=engine, heartbeat_interval=heartbeat, grace_period=3 * heartbeat,
                        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2))
                break
            except Exception as e:  # e.g. table exists, UNIQUE failed; not a lock, waited for LOCK_WAIT seconds already
                if attempt == 4 or not type(e).__module__.startswith("sqlalchemy") or LOCKED in str(e):
                    raise
                time.sleep(0.5 + random.random())
        sampler = optuna.samplers.TPESampler(constant_liar=True)  # constant_liar: parallel workers spread out
        return optuna.create_study(storage=rdb, study_name=study_name, direction="maximize", sampler=sampler, load_if_exists=True)
    except (ImportError, ValueError) as e:
        raise FerkitError(f"--storage {shown(storage)}: cannot open ({e}); give a URL such as sqlite:///search.db or postgresql://user:pass@host/db") from None
    except Exception as e:  # sqlalchemy's errors (a bad URL, an unreachable server), optuna's (a read-only file, another
        # schema), and the file's own: sqlite3's and an OSError (a full disk)
        if not (isinstance(e, (OSError, sqlite3.Error)) or type(e).__module__.split(".")[0] in ("sqlalchemy", "optuna")
                or "optuna storage upgrade" in str(e)):
            raise
        cause = e.__cause__ or e.__context__  # optuna's StorageInternalError says only "during the commit"
        why = f"{type(e).__name__}: {first_line(e)}" + (f"; {first_line(cause)}" if cause is not None else "")
        if db and LOCKED in why:  # locked again after _wait_for_lock's look
            raise FerkitError(locked(db, storage)) from None
        errnos = {getattr(x, "errno", None) for x in (e, cause)}
        if FULL in why or errnos & {errno.ENOSPC, errno.EDQUOT}:  # (the folder had room for check_output's block only)
            raise FerkitError(f"--storage {shown(storage)}: cannot write the study, the disk is full ({why}); free some "
                              "space, or give the search another --out (or --storage) on another disk") from None
        fix = "; " + write_fix(e) if isinstance(e, OSError) else ""  # (a folder made read-only, say)
        raise FerkitError(f"--storage {shown(storage)}: cannot open ({why}){fix}") from None


OPTUNA_TABLES = {"studies", "trials", "version_info"}  # (some of) the tables of an Optuna RDB storage


def _sqlite_file(url: str) -> str | None:
    """The SQLite storage's file, where it exists and holds something; None for a new or missing one (or
    no URL: RDBStorage says so)."""
    db = _sqlite_path(url)
    return db if db and os.path.isfile(db) and os.path.getsize(db) else None


def _sqlite_path(url: str) -> str | None:
    """The file of an SQLite storage URL, whether it exists or not; None for a server's, one in memory, or no URL."""
    from sqlalchemy.engine import make_url

    try:
        u = make_url(url)
    except Exception:
        return None
    return u.database if u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:") else None


def _wait_for_lock(db: str, storage: str) -> None:
    """Wait, up to LOCK_WAIT seconds, until no other process holds a write lock on the SQLite file db, saying
    so once after LOCK_NOTICE (a search behind another program's lock waited a minute or more in silence);
    then a FerkitError naming the file and the lock. A file that is no database is RDBStorage's to refuse."""
    from contextlib import closing

    for timeout in (LOCK_NOTICE, LOCK_WAIT - LOCK_NOTICE):
        try:
            with closing(sqlite3.connect(db, timeout=timeout, isolation_level=None)) as con:
                con.execute("BEGIN IMMEDIATE")  # the write lock a search takes, given back unused: the file is left as it is
            return
        except sqlite3.Error as e:  # (junk, a read-only file: RDBStorage's to refuse)
            if LOCKED not in str(e):
                return
        if timeout == LOCK_NOTICE:
            log.warning(f"{db}: another process holds a lock on the search's database; waiting up to {LOCK_WAIT:g}s for it")
    raise FerkitError(locked(db, storage))


def locked(db: str, storage: str) -> str:
    """The refusal of a search whose SQLite file db another process kept locked for LOCK_WAIT seconds."""
    return (f"--storage {shown(storage)}: {db} stayed locked by another process for {LOCK_WAIT:g}s (an open sqlite3 shell's "
            "transaction, a program reading or writing it); end that process, or commit or roll back its transaction, and "
            "rerun the search (it goes on where it stopped)")


class StudyLock:
    """One search at a time opens and checks the study of an SQLite storage, and records its settings and data
    there: an exclusive lock (flock, as train's run folders) on the database's folder, waited for up to LOCK_WAIT
    seconds (said after LOCK_NOTICE). Two searches started together on one --out with other data each found no
    record, wrote its own (the last one won) and ran its trials. The first keeps the lock until its first trial
    runs (release()), so the next sees a study that refuses other data, not one that a rerun takes over.
    None taken (held False): a server's storage, Windows, a file system without locks, a folder not there."""

    def __init__(self, storage: str):
        self.db = _sqlite_path(storage)
        self.fd = None
        folder = os.path.dirname(os.path.abspath(self.db)) if self.db else None
        if fcntl is None or folder is None:
            return
        try:
            fd = os.open(folder, os.O_RDONLY)
        except OSError:  # a folder not there (or not readable): RDBStorage's to refuse
            return
        try:
            self.fd = self._wait(fd, storage)
        except BaseException:  # (a refusal, Ctrl-C)
            os.close(fd)
            raise

    def _wait(self, fd: int, storage: str) -> int | None:
        start, said = time.monotonic(), False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:  # another search opens the study
                pass
            except OSError:  # no locks here (some network file systems): the searches open it unguarded, as before
                os.close(fd)
                return None
            waited = time.monotonic() - start
            if waited >= LOCK_WAIT:
                raise FerkitError(f"--storage {shown(storage)}: another search kept {self.db} to itself for {LOCK_WAIT:g}s "
                                  "while opening its study (it may wait for another program's lock on it); rerun once that "
                                  "search has started its trials, or stop it")
            if waited >= LOCK_NOTICE and not said:
                log.warning(f"{self.db}: another search is opening the study in it; waiting up to {LOCK_WAIT:g}s for it")
                said = True
            time.sleep(0.1)

    @property
    def held(self) -> bool:
        return self.fd is not None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # (the lock goes with it)
            self.fd = None


def _remove_database(db: str) -> None:
    """Remove an SQLite file a search created and could not fill (a full disk left it 0 bytes or half made), with
    the journal files SQLite keeps beside it."""
    for path in (db, db + "-journal", db + "-wal", db + "-shm"):
        with contextlib.suppress(OSError):
            os.unlink(path)


def _refuse_foreign_sqlite(db: str, storage: str) -> None:
    """A ConfigError for an SQLite file that holds tables, but not an Optuna storage's: Optuna added its dozen
    tables to another program's database (a search.db of another tool in --out, a --storage given the wrong
    file) and ran the search in it. Junk is RDBStorage's to refuse."""
    from contextlib import closing

    try:
        with closing(sqlite3.connect(db, timeout=LOCK_WAIT)) as con:  # (reads only: the file is left as it is)
            tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error:
        return
    if tables and not OPTUNA_TABLES <= tables:
        shown_tables = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise ConfigError(f"--storage {shown(storage)}: {db} is an SQLite database of another program (its tables: "
                          f"{shown_tables}), not a search's; the search would add its own tables to it. Give the search "
                          "a folder of its own (--out), or --storage a new file")


def _settings(cfg: TrainConfig, params: list[Param], cv: int) -> dict:
    """What must be the same for every worker and every resume of one study."""
    from .model import resolve_spec

    base = {k: v for k, v in cfg.to_dict().items() if k not in MACHINE_FIELDS | {"model", "overrides"}}
    return {"params": {p.name: p.text for p in params}, "cv": cv, "spec": resolve_spec(cfg.model, cfg.overrides).to_dict(), "config": base}


def _check_settings(study, settings: dict, storage: str) -> None:
    try:
        saved = study.user_attrs.get("settings")
    except ValueError:  # json's error on an attribute that is not JSON (optuna stores each as JSON text)
        saved = False
    if saved is not None and not (isinstance(saved, dict) and isinstance(saved.get("config"), dict)):  # (a TypeError below)
        raise ConfigError(f"study {study.study_name!r} in {shown(storage)}: its recorded settings are not what ferkit "
                          "writes (the database was edited, or written by another tool); give another --out or --study-name")
    if saved is None:
        study.set_user_attr("settings", settings)
        return
    saved = json.loads(json.dumps(saved))
    now = json.loads(json.dumps(settings))
    # a field added to TrainConfig since the study began (split_seed, ...) has its default there
    saved["config"] = {**{k: v for k, v in now["config"].items() if k in NEW_FIELDS_DEFAULTS and v == NEW_FIELDS_DEFAULTS[k]},
                       **saved["config"]}
    if saved == now:
        return
    if not _holds_trials(study):
        # every trial failed (a mistyped --teacher, say), none runs or waits to be retried (a killed one's retry
        # would resume its run under the new settings): the corrected rerun takes the study over
        log.info(f"study {study.study_name!r}: none of its trials completed; it goes on with the settings given now")
        study.set_user_attr("settings", settings)
        return
    diff = [f"{k} {saved.get(k)!r} -> {now.get(k)!r}" for k in ("params", "cv") if saved.get(k) != now.get(k)]
    diff += ["the model's layers"] if saved.get("spec") != now.get("spec") else []
    diff += [f"{k} {saved['config'].get(k)!r} -> {now['config'].get(k)!r}"
             for k in sorted(set(saved["config"]) | set(now["config"])) if saved["config"].get(k) != now["config"].get(k)]
    raise ConfigError(
        f"study {study.study_name!r} in {shown(storage)} was started with other settings (differing: {'; '.join(diff)}); "
        "rerun with the same flags to resume or share it, or give another --out")


def _holds_trials(study) -> bool:
    """Whether a trial of the study completed, runs or waits to be retried: then it keeps its settings and data,
    and a search with others is refused (with none, the corrected rerun takes it over)."""
    from optuna.trial import TrialState

    states = {TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING}
    return any(t.state in states for t in study.get_trials(deepcopy=False))


def data_record(data: FerData) -> dict:
    """What a study's trials are scored on: the source, the training and PublicTest faces' counts, and a hash
    of their pixels, labels and class names (the same data on another worker's path hashes alike)."""
    import hashlib

    used = np.flatnonzero(np.isin(data.splits, [SPLITS.index("train"), SPLITS.index("val")]))
    h = hashlib.blake2b(repr(data.names).encode(), digest_size=16)
    for start in range(0, len(used), 4096):  # (a chunk at a time: no copy of all the faces)
        rows = used[start:start + 4096]
        for a in (data.splits[rows], data.labels[rows], data.images[rows]):
            h.update(np.ascontiguousarray(a).tobytes())
    counts = data.counts()
    return {"source": data.source, "train": counts["train"], "val": counts["val"], "hash": h.hexdigest()}


def _check_data(study, record: dict, storage: str) -> None:
    """A study scores every trial on the same faces: a rerun or worker given other data (--data is a machine's
    path, so not among the settings) put the scores of two data sets in one ranking, unsaid."""
    saved = study.user_attrs.get("data")
    if saved is None or not isinstance(saved, dict) or saved.get("hash") == record["hash"]:
        if saved is None:  # (a study begun before ferkit recorded its data: from now on)
            study.set_user_attr("data", record)
        return
    if not _holds_trials(study):
        study.set_user_attr("data", record)  # none completed: the corrected rerun takes it over, as its settings
        return

    def faces(r: dict) -> str:
        return f"{r.get('source')}: {r.get('train')} training and {r.get('val')} PublicTest faces"

    raise ConfigError(f"study {study.study_name!r} in {shown(storage)} scored its trials on other data ({faces(saved)}; now "
                      f"{faces(record)}); rerun with the data it began with (--data, --label-names, --skip-bad-rows as "
                      "then), or give another --out for a search of these data")


def run_search(cfg: TrainConfig, params: list[Param], out: str | Path, n_trials: int, cv: int = 0, storage: str | None = None,
               study_name: str = "ferkit", timeout: float | None = None, heartbeat: int = 30, poll: float = 2.0):
    """Run trials until the study has n_trials completed ones (or timeout seconds passed); returns the study.

    Safe to run in several processes on one storage, and to rerun after a kill."""
    import optuna
    from optuna.trial import TrialState

    from .labels import label_set
    from .train import load_data, model_spec

    out = Path(out)
    if not 1 <= heartbeat <= MAX_HEARTBEAT:
        raise ConfigError(f"--heartbeat {heartbeat}: must be 1..{MAX_HEARTBEAT} seconds")
    if (out / LAST).exists():  # a training run's folder: the search's files would land among its own
        raise FerkitError(f"--out {out}: holds a training run (its last.pt); give the search a folder of its own")
    for name in RESULTS.values():  # found only after the last trial, it would cost the results of them all
        if os.path.lexists(out / name) and not (out / name).is_file():
            what = "a folder" if (out / name).is_dir() else "not a regular file"
            raise FerkitError(f"--out {out}: its {name} is {what}, and the search writes its results there; move it away "
                              "or give another --out")
    if os.path.lexists(out / "trials") and not (out / "trials").is_dir():  # (each trial failed on it, after the data were read)
        raise FerkitError(f"--out {out}: its trials is not a folder, and the search trains each trial in trials/<n>/ there; "
                          "move it away or give another --out")
    storage = storage or default_storage(out)
    data = load_data(cfg, model_spec(cfg))  # at the model's input size and channels
    say_leaked(data)  # (fit checks only the data it reads itself)
    folds = None
    if cv and label_set(cfg.labels, data.names).reads_votes(data):  # (each trial failed on the fold's rows)
        raise ConfigError(f"--cv {cv} with --labels {cfg.labels}: FER+'s votes follow FER2013's rows, which the folds "
                          "reorder; search on PublicTest (leave out --cv)")
    if cv:
        folds = cv_folds(train_images(data, cfg)[1], cv, cfg.seed, data.names)
    elif not data.has("val"):
        raise FerkitError(f"{data.source}: no PublicTest rows to score trials on; use --cv K (k-fold cross-validation on the training rows)")
    made = missing_folders([out])
    out.mkdir(parents=True, exist_ok=True)  # only now: a search refused for its data leaves no folder
    try:
        lock = StudyLock(storage)  # before the study is opened: its checks see what the search before wrote
    except BaseException:  # (refused after LOCK_WAIT, Ctrl-C)
        remove_empty(made)
        raise
    try:
        study = _open_checked(cfg, params, cv, data, out, storage, study_name, heartbeat, lock, made)
    except BaseException:
        lock.release()
        raise
    if _holds_trials(study):
        lock.release()  # a search with other data is refused now, not let take the study over

    ran = []  # numbers of the trials this worker ran

    def objective(trial):
        lock.release()  # this trial runs: a search with other data is refused now
        ran.append(trial.number)
        # Two workers that counted at the same moment may both have started a trial for the last slot:
        # the later trial number gives way (PRUNED, left out of the table).
        ahead = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
        if sum(t.number < trial.number for t in ahead) >= n_trials:
            trial.set_user_attr("surplus", True)
            raise optuna.TrialPruned("the study has its trials")
        values = {p.name: p.suggest(trial) for p in params}
        frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
        origin = (frozen.system_attrs.get("retry_history") or [None])[-1]  # the killed trial this one retries
        run_dir = out / "trials" / str(trial.number)
        if origin is not None and (out / "trials" / str(origin)).exists() and not run_dir.exists():
            os.replace(out / "trials" / str(origin), run_dir)  # continue from the killed trial's checkpoints
        trial.set_user_attr("run_dir", str(run_dir))
        log.info(f"trial {trial.number}: {format_values(values)}" + (f"  (retry of trial {origin})" if origin is not None else ""))
        t0 = time.time()
        go_on = f"rerun the same ferkit search command: it goes on with trial {trial.number} (from its last whole epoch, where it saved one)"
        try:
            value, info = score(apply(cfg, values), data, run_dir, folds, resume=origin is not None, go_on=go_on)
        except OutputError as e:  # a full disk: every next trial would fail alike, each after an epoch's work; and this
            _queue_again(trial, frozen, f"stopped: {e}")  # trial's epochs so far were lost to a FAIL: the search stops,
            raise  # and its rerun goes on with this trial
        except FerkitError as e:  # e.g. the loss diverged at this learning rate: the trial fails, the search goes on
            trial.set_user_attr("error", str(e))
            log.info(f"trial {trial.number}: failed: {e}")
            return float("nan")  # Optuna marks the trial FAIL
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: Optuna marks the trial FAIL; queue it again, as a killed one
            _queue_again(trial, frozen, "interrupted; a rerun goes on with it")  # is, to go on from its last checkpoint
            raise
        info["seconds"] = round(time.time() - t0, 1)
        for k, v in info.items():
            trial.set_user_attr(k, v)
        log.info(f"trial {trial.number}: {'cv' if cv else 'val'} acc {value:.4f} (epoch {info['epoch']}) in {info['seconds']:.0f}s")
        return value

    try:
        _trials_until_done(study, objective, ran, n_trials, timeout, poll)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the table of the trials so far is written; a rerun goes on
        files = write_results(study, cfg, params, out, cv)["files"]
        raise KeyboardInterrupt(f"wrote {', '.join(map(str, files.values()))}; rerun the same command to go on") from None
    finally:
        lock.release()  # (--trials 0, or a search that ran none)
    return study


def _open_checked(cfg: TrainConfig, params: list[Param], cv: int, data: FerData, out: Path, storage: str, study_name: str,
                  heartbeat: int, lock: StudyLock, made: list[Path]):
    """run_search's study, opened under the lock and checked against its settings and data (recorded where new)."""
    # (under the lock no other search creates the file meanwhile: one there now is another's, and stays)
    fresh = lock.held and not os.path.lexists(lock.db)
    try:
        study = open_study(storage, study_name, heartbeat)
    except FerkitError:  # nor one refused for its --storage, nor the database it began (a full disk left it 0 bytes)
        if fresh:
            _remove_database(lock.db)
        remove_empty(made)
        raise
    _check_settings(study, _settings(cfg, params, cv), storage)
    _check_data(study, data_record(data), storage)
    trials = out / "trials"
    if not study.get_trials(deepcopy=False) and trials.is_dir() and any(trials.iterdir()):  # its trial 0 would be theirs
        raise FerkitError(f"{trials}: holds the trials of an earlier search, and study {study.study_name!r} in {shown(storage)} "
                          "has none yet: its trial folders would collide with them. Give another --out, or delete "
                          f"{trials} to start over")
    return study


def _queue_again(trial, frozen, error: str) -> None:
    """A trial that stops without its own fault (Ctrl-C, a full disk): Optuna marks it FAIL, and it is queued
    again as a killed one is, with its parameters, for the next run to go on from its last checkpoint."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=None)(trial.study, frozen)
    trial.set_user_attr("error", error)


def _trials_until_done(study, objective, ran: list[int], n_trials: int, timeout: float | None, poll: float) -> None:
    """run_search's loop: one trial at a time until the study has n_trials completed (or timeout
    seconds passed), retrying killed workers' trials and waiting for the last ones others run."""
    import optuna
    from optuna.trial import TrialState

    start, failed_in_row, waiting = time.time(), 0, False
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # a killed worker's trial: FAIL, and queued again
        states = [t.state for t in study.get_trials(deepcopy=False)]
        done, running = states.count(TrialState.COMPLETE), states.count(TrialState.RUNNING)
        if done >= n_trials:
            break
        if timeout is not None and time.time() - start > timeout:
            log.info(f"timeout: {timeout:g}s passed; {done} of {n_trials} trials completed (rerun to go on)")
            break
        if done + running >= n_trials:  # the last trials run elsewhere (or in a killed worker, until its heartbeat goes stale)
            if not waiting:
                log.info(f"waiting for {running} running trial(s) of other workers")
            waiting = True
            time.sleep(poll)
            continue
        waiting = False
        study.optimize(objective, n_trials=1)
        last = next(t for t in study.get_trials(deepcopy=False) if t.number == ran[-1])
        failed_in_row = failed_in_row + 1 if last.state == TrialState.FAIL else 0
        if failed_in_row >= 3:
            raise FerkitError(f"{failed_in_row} trials in a row failed (last: {last.user_attrs.get('error', '?')}); "
                              "check the data, the flags given and the ranges of the search; a rerun with them corrected "
                              "goes on in this --out while no trial has completed")


# ---------------------------------------------------------------- results


def trial_rows(study, names: list[str]) -> list[dict]:
    """One dict per trial, ranked: completed by accuracy (best first), then the others by number."""
    from optuna.trial import TrialState

    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.WAITING or t.user_attrs.get("surplus"):
            continue
        row = {"trial": t.number, "value": t.value if t.state == TrialState.COMPLETE else None, "state": t.state.name}
        row.update({n: t.params.get(n) for n in names})
        row.update({k: t.user_attrs.get(k) for k in ("epoch", "fold_acc", "seconds", "run_dir", "error")})
        rows.append(row)
    return sorted(rows, key=lambda r: (r["value"] is None, -(r["value"] or 0), r["trial"]))


def param_names(study, params: list[Param]) -> list[str]:
    names = [p.name for p in params]
    for t in study.get_trials(deepcopy=False):
        names += [n for n in t.params if n not in names]
    return names


def format_values(values: dict) -> str:
    return "  ".join(f"{k}={_fmt(v)}" for k, v in values.items())


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.2e}" if v != 0 and not 1e-2 <= abs(v) < 1e4 else f"{v:.4g}"
    return "-" if v is None else str(v)


def format_table(rows: list[dict], names: list[str], metric: str = "val acc") -> str:
    """The paper's Tables 1-2 layout: one row per trial, best first."""
    head = ["rank", "trial", metric] + names + ["state"]
    body = []
    for i, r in enumerate(rows, 1):
        acc = f"{r['value']:.4f}" if r["value"] is not None else "-"
        body.append([str(i) if r["value"] is not None else "", str(r["trial"]), acc] + [_fmt(r[n]) for n in names] + [r["state"]])
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    return "\n".join("  ".join(x.rjust(w) for x, w in zip(line, widths)) for line in [head] + body)


def best_config(study, cfg: TrainConfig) -> TrainConfig | None:
    """cfg with the best trial's values, paths made absolute so the file works from any folder."""
    from optuna.trial import TrialState

    from .train import absolute_paths

    if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        return None
    return absolute_paths(apply(cfg, study.best_trial.params))


def write_results(study, cfg: TrainConfig, params: list[Param], out: str | Path, cv: int = 0) -> dict:
    """search.csv, search.json and best.yaml in out; returns {"rows", "table", "files"}."""
    import yaml

    out = Path(out)
    names = param_names(study, params)
    rows = trial_rows(study, names)
    metric = f"cv{cv} acc" if cv else "val acc"
    table = [[*SEARCH_COLUMNS, *names]] + [[r["trial"], "" if r["value"] is None else r["value"], r["state"]]
                                           + ["" if r[n] is None else r[n] for n in names] for r in rows]
    files = {kind: out / RESULTS[kind] for kind in ("csv", "json")}
    write_output(files["csv"], csv_text(table))  # (a categorical word such as '-x' is written as text)
    write_output(files["json"], json.dumps({"study": study.study_name, "metric": metric, "params": {p.name: p.text for p in params}, "trials": rows}, indent=1))
    best = best_config(study, cfg)
    if best is not None:
        t = study.best_trial
        head = (f"# ferkit search: best of {sum(r['value'] is not None for r in rows)} completed trials of study {study.study_name!r}: "
                f"trial {t.number}, {metric} {t.value:.4f}\n"
                f"# train it: ferkit train --config {shell_word(out / RESULTS['best'])}  "
                "(epochs: the preset's; flags override, e.g. --epochs 30)\n")
        files["best"] = out / RESULTS["best"]
        # a full run trains on every image for the preset's (or the user's) epochs, not the trials' quick settings
        full = {k: v for k, v in best.to_dict().items() if k not in ("train_subset", "epochs") or k in t.params}
        write_output(files["best"], head + yaml.safe_dump(full, sort_keys=False))
    return {"rows": rows, "table": format_table(rows, names, metric), "files": files}
