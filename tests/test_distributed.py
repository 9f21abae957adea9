"""DDP training with 2 gloo processes on the CPU (tiny data), and the per-epoch sharding."""

import json
import os
import re
import socket
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp

from conftest import tiny_spec, write_fer_csv
from ferkit.checkpoint import load_checkpoint, read_checkpoint
from ferkit.distributed import Dist, setup
from ferkit.errors import FerkitError
from ferkit.train import Batches, resolve_config


def test_epoch_shards_are_disjoint_and_ranks_stay_in_step():
    data = Batches(torch.arange(23.0).view(23, 1, 1, 1), torch.arange(23))
    gens = [torch.Generator().manual_seed(5) for _ in range(3)]
    parts = [Dist(rank, 3).epoch(data, g) for rank, g in enumerate(gens)]
    shards = [set(p.y.tolist()) for p, _ in parts]
    assert [len(s) for s in shards] == [7, 7, 7] and len(set.union(*shards)) == 21  # disjoint; 23 % 3 wait a turn
    assert all(torch.equal(p.x.view(-1).long(), p.y) for p, _ in parts)  # images and labels cut alike
    assert all(torch.equal(g.get_state(), gens[0].get_state()) for g in gens)  # the run's generator: same on all ranks
    draws = [torch.rand(4, generator=g) for _, g in parts]
    assert not torch.equal(draws[0], draws[1])  # but each rank augments with its own
    assert Dist().epoch(data, gens[0]) == (data, gens[0])  # one process: unchanged


def test_world_size_without_torchrun_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(FerkitError, match="WORLD_SIZE=2 but no distributed job to join .*RANK.*; start ferkit with torchrun"):
        setup("cpu")


@pytest.mark.parametrize("env,message", [
    ({"WORLD_SIZE": "abc"}, "WORLD_SIZE='abc': must be an integer (torchrun sets it)"),  # was int()'s ValueError
    ({"WORLD_SIZE": "2", "RANK": "5"}, "RANK=5 with WORLD_SIZE=2: a rank is 0..1"),  # waited 30 minutes for the job
])
def test_distributed_variables_set_by_hand_are_one_line(monkeypatch, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(FerkitError, match=re.escape(message)):
        setup("cpu")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, port: int, cfg_dict: dict, out: str, result: str):
    """One DDP process: train 1 epoch, resume to 2, save this rank's final parameters (and a mean over the ranks)."""
    import ferkit.train as train

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    models = []
    create = train.create_model
    train.create_model = lambda spec: models.append(create(spec)) or models[-1]  # to see this rank's weights
    cfg = resolve_config(base=cfg_dict)
    train.fit(cfg, out, progress=False)
    train.fit(resolve_config(base=cfg_dict, epochs=2), out, resume=True, progress=False)
    params = {k: v.detach().clone() for k, v in models[-1].named_parameters()}
    torch.save({"params": params, "mean": setup("cpu").average(float(rank), [1.0 * rank, 10.0 * rank])}, result.format(rank=rank))


def test_two_gloo_ranks_stay_in_sync_and_resume(tmp_path):
    csv = write_fer_csv(tmp_path / "fer.csv", n=42)
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(tiny_spec().to_dict()))
    cfg = resolve_config(str(spec), data=str(csv), epochs=1, batch_size=7, device="cpu", threads=1)
    out, result = tmp_path / "run", str(tmp_path / "rank{rank}.pt")
    mp.spawn(_rank, args=(2, _free_port(), cfg.to_dict(), str(out), result), nprocs=2)

    r0, r1 = (torch.load(result.format(rank=r)) for r in (0, 1))
    assert r0["mean"] == r1["mean"] == (0.5, [0.5, 5.0])  # what fit averages the training loss and accuracy with
    w0, w1 = r0["params"], r1["params"]
    assert all(torch.equal(w0[k], w1[k]) for k in w0)  # the replicas hold identical weights
    ck = read_checkpoint(out / "last.pt")
    assert ck["epoch"] == 2 and ck["world_size"] == 2
    assert all(torch.equal(ck["state_dict"][k], w0[k]) for k in w0)  # rank 0 saved them
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]  # resumed from last.pt at epoch 2
    assert len((out / "iterations.csv").read_text().splitlines()) == 1 + 2 * 3  # 21 images per rank / 7 = 3 steps per epoch
    assert load_checkpoint(out).predict_proba(torch.zeros(2, 48, 48, dtype=torch.uint8).numpy()).shape == (2, 7)


def test_torchrun_cli(tmp_path):
    csv = write_fer_csv(tmp_path / "fer.csv", n=28)
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(tiny_spec().to_dict()))
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port()),
                        "-m", "ferkit", "train", "--model", str(spec), "--data", str(csv), "--epochs", "1", "--batch-size", "7",
                        "--device", "cpu", "--ema", "0.5", "--out", str(out), "--quiet"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("distributed: 2 processes (gloo on cpu), batch 7 per process, 14 in all") == 1  # rank 0 alone speaks
    assert r.stdout.count("done: best val acc") == 1
    last = read_checkpoint(out / "last.pt")
    assert last["world_size"] == 2 and "ema" in last  # the weight average follows the replicas too


def test_a_rank_that_is_no_number_does_not_stop_python_m_ferkit(monkeypatch, capsys):
    """(`RANK=abc python -m ferkit ...` was int()'s ValueError before the command ran)"""
    from ferkit.distributed import quiet_other_ranks

    monkeypatch.setenv("RANK", "abc")
    quiet_other_ranks()
    print("still speaking")
    assert "still speaking" in capsys.readouterr().out


def _dying_rank(rank: int, port: int, argv: list, result: str):
    """One rank of `ferkit train` under a 2-process job; rank 1 dies (as if killed) in its second epoch."""
    import ferkit.train as train
    from ferkit.cli import main

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    epochs, one_epoch = [], train.train_one_epoch

    def train_one_epoch(*a, **k):
        epochs.append(1)
        if rank == 1 and len(epochs) == 2:
            os._exit(9)
        return one_epoch(*a, **k)

    train.train_one_epoch = train_one_epoch
    sys.stderr = open(result.format(rank=rank), "w", buffering=1)  # (a traceback lands there too)
    print(f"rc={main(argv)}", file=sys.stderr)
    os._exit(0)  # (not destroy_process_group's wait on the dead rank)


def test_a_rank_that_dies_leaves_one_error_line_on_the_others(tmp_path):
    """(rank 0 printed gloo's 'Connection closed by peer' RuntimeError as a 30-line traceback)"""
    csv = write_fer_csv(tmp_path / "fer.csv", n=28)
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(tiny_spec().to_dict()))
    out, result = tmp_path / "run", str(tmp_path / "rank{rank}.txt")
    argv = ["train", "--model", str(spec), "--data", str(csv), "--epochs", "3", "--batch-size", "7", "--device", "cpu",
            "--threads", "1", "--out", str(out), "--quiet"]
    ctx, port = mp.get_context("spawn"), _free_port()
    ranks = [ctx.Process(target=_dying_rank, args=(r, port, argv, result)) for r in (0, 1)]
    for p in ranks:
        p.start()
    for p in ranks:
        p.join(120)
    assert [p.exitcode for p in ranks] == [0, 9]
    err = open(result.format(rank=0)).read()
    assert err == ("error: another process of this distributed job stopped (killed, crashed or out of memory; its own error, "
                   f"if it printed one, is above), so this one cannot go on; continue from its last whole epoch with "
                   f"'ferkit train --resume {out}'\nrc=2\n")
    assert read_checkpoint(out / "last.pt")["epoch"] == 1  # what --resume goes on from


@pytest.mark.parametrize("entry", [["-m", "ferkit"], ["-m", "ferkit.cli"]])
def test_ranks_after_the_first_are_quiet_by_either_entry(tmp_path, entry):
    """(`torchrun -m ferkit.cli train` let rank 1 print too, and it said "done: no validation split", wrongly:
    only rank 0 validates)"""
    env = {**os.environ, "RANK": "1", "WORLD_SIZE": "2", "PYTHONPATH": os.pathsep.join(sys.path)}
    r = subprocess.run([sys.executable, *entry, "models"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and r.stdout == ""
    r = subprocess.run([sys.executable, *entry, "demo", "--out", "-"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and r.stdout == "" and r.stderr.startswith("error: --out -:")  # errors still reach stderr
    r = subprocess.run([sys.executable, *entry, "models"], capture_output=True, text=True, env={**env, "RANK": "0"}, timeout=120)
    assert r.stdout  # rank 0 speaks


def test_a_usage_error_is_printed_once_per_machine():
    """(`torchrun --nproc-per-node 4 -m ferkit train --epoch 3` printed argparse's usage and error four times)"""
    env = {**os.environ, "RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "PYTHONPATH": os.pathsep.join(sys.path)}
    argv = [sys.executable, "-m", "ferkit", "train", "--epoch", "3"]
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and r.stderr == ""
    r = subprocess.run(argv, capture_output=True, text=True, env={**env, "RANK": "0", "LOCAL_RANK": "0"}, timeout=120)
    assert r.returncode == 2 and "unrecognized arguments: --epoch 3" in r.stderr  # the machine's first process says it


def test_a_rank_outside_a_job_still_speaks():
    """(a RANK left in the environment by a cluster or a shell, with no WORLD_SIZE, silenced every command's
    output: `RANK=1 ferkit predict photo.jpg` printed nothing and exited 0)"""
    env = {**os.environ, "RANK": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("WORLD_SIZE", None)
    r = subprocess.run([sys.executable, "-m", "ferkit", "models"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and "ferplus-fast" in r.stdout


def _refusing_rank(rank: int, port: int, argv: list, cwd: str, result: str):
    """One rank of `ferkit train` without --out under a 2-process job; rank 1's clock reads a second later."""
    import time

    from ferkit.cli import main

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    os.chdir(cwd)
    torch.set_num_threads(1)
    strftime = time.strftime
    time.strftime = lambda fmt, *t: f"20250101-00000{rank}" if fmt == "%Y%m%d-%H%M%S" else strftime(fmt, *t)
    sys.stderr = open(result.format(rank=rank), "w", buffering=1)
    print(f"rc={main(argv)}", file=sys.stderr)
    os._exit(0)  # (not destroy_process_group's wait on the other rank)


def test_ranks_take_rank_0s_default_out_and_say_its_refusal_once(tmp_path):
    """Each rank named the default --out by its own clock, so ranks a second apart trained into two folders
    (here rank 1 trained into a new one while rank 0 refused); and each rank printed the same refusal."""
    csv = write_fer_csv(tmp_path / "fer.csv", n=14)
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(tiny_spec().to_dict()))
    held = tmp_path / "runs" / "tiny-20250101-000000"  # rank 0's name: a run is there already
    held.mkdir(parents=True)
    (held / "last.pt").write_bytes(b"")
    argv = ["train", "--model", str(spec), "--data", str(csv), "--epochs", "1", "--batch-size", "7", "--device", "cpu",
            "--threads", "1", "--quiet"]
    result, ctx, port = str(tmp_path / "rank{rank}.txt"), mp.get_context("spawn"), _free_port()
    ranks = [ctx.Process(target=_refusing_rank, args=(r, port, argv, str(tmp_path), result)) for r in (0, 1)]
    for p in ranks:
        p.start()
    for p in ranks:
        p.join(120)
    assert [p.exitcode for p in ranks] == [0, 0]
    errors = [open(result.format(rank=r)).read() for r in (0, 1)]
    assert errors[0] == (f"error: --out {held.relative_to(tmp_path)}: it holds a run already (its last.pt); continue it with "
                         f"'ferkit train --resume {held.relative_to(tmp_path)}', or give another --out (delete the folder "
                         "to start it over)\nrc=2\n")
    assert errors[1] == "rc=2\n"  # rank 1 refused alike, and left the saying to rank 0
    assert os.listdir(tmp_path / "runs") == [held.name]


def test_an_error_of_one_rank_alone_is_said_by_it(monkeypatch):
    """Ranks > 0 leave to rank 0 only what every rank meets alike: the checks before the job's work, and an interrupt."""
    from ferkit import distributed
    from ferkit.distributed import RankError, said_elsewhere

    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(distributed, "_working", False)  # (a training in this test process began work)
    assert said_elsewhere(FerkitError("--out run: it holds a run already"))
    assert not said_elsewhere(RankError("LOCAL_RANK 1, but this machine has 1 GPU(s)"))
    monkeypatch.setattr(distributed, "_working", True)  # e.g. out of memory on this rank's GPU alone
    assert not said_elsewhere(FerkitError("out of memory"))
    assert said_elsewhere(KeyboardInterrupt("(continue ...)"))  # Ctrl-C mid-epoch reaches every rank
    monkeypatch.setattr(distributed, "_working", False)
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert not said_elsewhere(FerkitError("--out run: it holds a run already"))
    assert not said_elsewhere(KeyboardInterrupt())


@pytest.mark.parametrize("local_rank, said", [("1", ""), ("0", "interrupted (continue ...)\n")])
def test_an_interrupt_is_said_by_the_first_process_of_a_machine(local_rank, said, monkeypatch, capsys):
    """(Ctrl-C under `torchrun --nproc-per-node 8` printed "interrupted (continue ...)" eight times)"""
    from ferkit.cli import COMMANDS, main

    def run(args):
        raise KeyboardInterrupt("(continue ...)")

    help, add_arguments, _ = COMMANDS["models"]
    monkeypatch.setitem(COMMANDS, "models", (help, add_arguments, run))
    monkeypatch.setattr(sys, "stdout", sys.stdout)  # (main sends the stdout of ranks > 0 to /dev/null)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", local_rank)
    monkeypatch.setenv("LOCAL_RANK", local_rank)
    assert main(["models"]) == 130
    assert capsys.readouterr().err == said
