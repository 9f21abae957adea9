"""`python -m ferkit ...`: the ferkit command, also as torchrun's entry point.

    torchrun --nproc-per-node 2 -m ferkit train --model vgg ...
"""

import sys

from .cli import main

sys.exit(main())  # (under torchrun, main quiets the stdout of ranks > 0)
