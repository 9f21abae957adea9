"""`python -m ferkit ...`: the ferkit command, also as torchrun's entry point.

    torchrun --nproc-per-node 2 -m ferkit train --model vgg ...
"""

import os
import sys

from .cli import main

if "RANK" in os.environ:  # under torchrun; distributed.py imports torch, which a light install has not
    from .distributed import quiet_other_ranks

    quiet_other_ranks()  # only rank 0 prints; every rank's errors still reach stderr
sys.exit(main())
