"""Distributed data-parallel training (torch DDP under torchrun): the one module that knows about ranks.

    torchrun --nproc-per-node 4 -m ferkit train --model vgg --batch-size 32 ...

`train.fit` asks `setup()` for a `Dist` and leaves every rank question to it. Without torchrun
(no WORLD_SIZE in the environment) it is a single process (rank 0 of 1) and every method is the
identity, so a plain run is unchanged. Under torchrun each process:

- trains on one device: cuda:LOCAL_RANK with NCCL, or the CPU with gloo;
- takes a disjoint 1/N shard of every epoch: all ranks draw the same permutation from the
  run's seeded generator and each keeps its own slice, so an epoch still sees each image once;
- is one replica of the model: DDP averages the gradients, so the weights stay identical;
  batch-norm running statistics are rank 0's (DDP broadcasts its buffers at every forward);
- leaves validation, checkpoints, history and config.json to rank 0, and all ranks resume
  from the same last.pt;
- trains into rank 0's default run folder (Dist.rank0s), and leaves the refusals that every
  process meets alike, and an interrupt, to the first process of its machine (said_elsewhere).

--batch-size is per process: the global batch is N x --batch-size, and an epoch has N times
fewer steps. The learning rate is not scaled; see the README (distributed training).
"""

from __future__ import annotations

import atexit
import logging
import os
from dataclasses import dataclass, fields, replace

import torch
import torch.distributed as tdist

from .checkpoint import device_of
from .errors import FerkitError

log = logging.getLogger(__name__)

# The latest `average` collective, held until the interpreter ends. gloo frees a finished
# collective on its own worker threads; one that holds the last reference to a Python tensor
# must take the GIL to free it, and if the process is already shutting down (rank 1 exits
# right after its last `average` and the final barrier), that aborts it: "terminate called
# without an active exception" (3 of 89 torchrun jobs on 2 cores). Holding the handle
# here leaves the last reference, and the freeing, to the main thread.
_last_work: list = []

# Whether this process has begun the job's work (Dist.rank0_first, which train.fit calls after its checks).
# Until then every process runs the same checks on the same flags and files, so a refusal (the --out
# folder holds a run, a bad --lr) is the same on all of them: said_elsewhere.
_working = False


class RankError(FerkitError):
    """An error that one process of a torchrun job may meet alone (its RANK or LOCAL_RANK, a process of the
    job gone): every process that meets it says so, even before the job's work begins."""


@dataclass
class Dist:
    """This process's place in the job: rank of world on device (rank 0 of 1: a plain run)."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        """Rank 0: the one process that validates, logs and writes files."""
        return self.rank == 0

    def describe(self, batch_size: int) -> str:
        return (f"distributed: {self.world} processes ({tdist.get_backend()} on {self.device.type}), "
                f"batch {batch_size} per process, {batch_size * self.world} in all")

    def barrier(self) -> None:
        if self.world > 1:  # NCCL wants this rank's GPU named
            tdist.barrier(device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def rank0_first(self) -> None:
        """Ranks > 0 wait here until rank 0 calls rank0_done() (e.g. so only rank 0 fills the disk caches).
        The job's work begins: from here a process may fail alone (see _working)."""
        global _working
        _working = True
        if not self.main:
            self.barrier()

    def rank0_done(self) -> None:
        if self.main:
            self.barrier()

    def shard_size(self, n: int) -> int:
        """Images each rank trains on per epoch: n // world (the remainder, a different one each epoch, waits)."""
        if self.world > 1 and n // self.world < 2:  # batch norm needs 2+ images per batch
            raise FerkitError(f"{n} training images cannot be shared by {self.world} processes; use fewer processes or more images")
        return n // self.world

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model to train: a DDP replica that averages gradients over the ranks (the model itself in one process).

        Evaluate and save the unwrapped model: DDP's forward is a collective all ranks must join."""
        if self.world == 1:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def epoch(self, data, gen: torch.Generator):
        """This rank's share of one epoch: (its shard of data, a generator for its shuffles and augmentations).

        In one process: (data, gen). Under DDP every rank draws the same permutation and two seeds
        from gen (so gen stays the same on all ranks and rank 0's checkpoint resumes them all);
        rank r keeps slice r of the permutation, augments with its own generator and reseeds
        torch's global RNG (dropout) per rank, so ranks neither see the same images nor draw the
        same flips and dropout masks, and a resumed run draws what the uninterrupted one would."""
        if self.world == 1:
            return data, gen
        n = self.shard_size(len(data))
        perm = torch.randperm(len(data), generator=gen)
        idx = perm[self.rank * n : (self.rank + 1) * n]
        aug_seed, drop_seed = torch.randint(0, 2**62, (2,), generator=gen).tolist()
        torch.manual_seed(drop_seed + self.rank)
        shard = replace(data, **{f.name: v[idx] for f in fields(data) if isinstance(v := getattr(data, f.name), torch.Tensor)})
        return shard, torch.Generator().manual_seed(aug_seed + self.rank)

    def rank0s(self, value):
        """`value` as rank 0 has it, on every rank (in one process, `value`): for what each rank would
        compute apart, such as the default run folder's name from its own clock."""
        if self.world == 1:
            return value
        box = [value]
        try:
            tdist.broadcast_object_list(box, src=0, device=self.device)
        except RuntimeError as e:
            if not lost_peer(e):
                raise
            raise RankError("another process of this distributed job stopped before training began (its own error, "
                            "if it printed one, is above); start the run again") from None
        return box[0]

    def average(self, *values):
        """The mean over the ranks of each float, or of each element of a list of floats (same length on every rank)."""
        if self.world == 1:
            return values
        t = torch.tensor([x for v in values for x in (v if isinstance(v, list) else [v])], dtype=torch.float64, device=self.device)
        work = tdist.all_reduce(t, async_op=True)  # one message for all of them
        work.wait()
        _last_work[:] = [work]  # see _last_work
        means = iter((t / self.world).tolist())
        return tuple([next(means) for _ in v] if isinstance(v, list) else next(means) for v in values)


def lost_peer(e: BaseException) -> bool:
    """Whether an exception from training means another process of the job is gone (killed, crashed,
    out of memory): its collective (DDP's gradient average, `average`, a barrier) then fails on the
    processes left. gloo raises a plain RuntimeError naming its TCP transport ("Connection closed by
    peer"), NCCL a DistError."""
    return isinstance(e, tdist.DistError) or isinstance(e, RuntimeError) and "gloo/transport" in str(e)


def _env_int(name: str, default: int) -> int:
    """An integer that torchrun sets in the environment; a RankError for one set otherwise by hand (each process its own)."""
    value = os.environ.get(name, str(default))
    try:
        return int(value)
    except ValueError:
        raise RankError(f"{name}={value!r}: must be an integer (torchrun sets it); unset it to train in one "
                        "process") from None


def setup(device: str = "auto") -> Dist:
    """Join the torchrun job if this process is in one (WORLD_SIZE > 1), else a single-process Dist.

    Under torchrun, "auto"/"cuda" means cuda:LOCAL_RANK (NCCL), "cpu" means gloo."""
    world = tdist.get_world_size() if tdist.is_available() and tdist.is_initialized() else _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return Dist(device=device_of(device))
    rank = _env_int("RANK", 0)
    if not 0 <= rank < world:
        raise RankError(f"RANK={rank} with WORLD_SIZE={world}: a rank is 0..{world - 1}; start ferkit with torchrun")
    dev = device_of(device)
    if dev.type == "cuda":
        local = _env_int("LOCAL_RANK", 0)
        if local >= torch.cuda.device_count():
            raise RankError(f"LOCAL_RANK {local}, but this machine has {torch.cuda.device_count()} GPU(s); "
                            "give torchrun --nproc-per-node at most the number of GPUs")
        dev = torch.device("cuda", local)  # one GPU per process
        torch.cuda.set_device(dev)
    elif dev.type != "cpu":
        raise FerkitError(f"--device {device}: distributed training runs on CUDA GPUs (NCCL) or CPUs (gloo), not {dev.type}")
    if not tdist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        # init_process_group waits (30 minutes by default) until all the job's processes have started
        log.info(f"rank {rank}: joining a job of {world} processes at {os.environ.get('MASTER_ADDR', '?')}:"
                 f"{os.environ.get('MASTER_PORT', '?')} ({backend}); it waits for all of them to start")
        try:
            tdist.init_process_group(backend)
        except ValueError as e:  # e.g. RANK or MASTER_ADDR missing: WORLD_SIZE set by hand, not by torchrun
            raise FerkitError(f"WORLD_SIZE={world} but no distributed job to join ({e}); start ferkit with torchrun") from None
        atexit.register(tdist.destroy_process_group)
    return Dist(tdist.get_rank(), tdist.get_world_size(), dev)


def quiet_other_ranks() -> None:
    """Under torchrun, send the stdout of ranks > 0 to /dev/null: rank 0 speaks for the job (errors still reach stderr).
    (main calls it only under torchrun: cli._under_torchrun, for a RANK alone may be a cluster's or a shell's.)"""
    rank = os.environ.get("RANK", "0")
    if rank.isdigit() and int(rank) > 0:  # (another value: setup() names it, if the job is distributed at all)
        import sys

        sys.stdout = open(os.devnull, "w")


def said_elsewhere(e: FerkitError | KeyboardInterrupt) -> bool:
    """Whether another process of this torchrun job on this machine prints the error `e` too, so this one need
    not: true on LOCAL_RANK > 0 for an error met before the job's work began (_working), except a RankError,
    and for an interrupt at any time (Ctrl-C reaches every process, and torchrun passes its SIGTERM on to
    each; a process killed alone leaves the others a RankError that says so). LOCAL_RANK, not RANK: on a
    job of several machines each one's first process speaks, as each may see different files."""
    local, world = os.environ.get("LOCAL_RANK", "0"), os.environ.get("WORLD_SIZE", "1")
    if not (local.isdigit() and int(local) > 0 and world.isdigit() and int(world) > 1):
        return False
    return isinstance(e, KeyboardInterrupt) or not (_working or isinstance(e, RankError))
