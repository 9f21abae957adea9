"""`python -m ferkit ...`: the ferkit command, also as torchrun's entry point.

    torchrun --nproc-per-node 2 -m ferkit train --model vgg ...
"""

import sys

from .cli import main
from .distributed import quiet_other_ranks

quiet_other_ranks()  # under torchrun only rank 0 prints; every rank's errors still reach stderr
sys.exit(main())
