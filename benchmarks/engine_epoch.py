"""Per-epoch time of the fast engine on the post's setup, for one or more source trees.

    OMP_NUM_THREADS=1 python benchmarks/engine_epoch.py --trees /work/main/src src

Trains the ``bbb`` kind (1-20-20-1, fixed noise, full batch) on the toy data (150 rows) for
``--epochs`` epochs without early stopping, in a child process per tree and repeat (interleaved:
tree A, tree B, tree A, ...), and prints the fastest of ``--repeats`` training times per tree
(``History.seconds``: the training loop alone, no imports) in microseconds per epoch, with the
ratio to the first tree. Each child imports the ``varbayes`` under its tree (``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

CHILD = """
import torch
from varbayes.data import load_toy
from varbayes.kinds.fitted import fit
toy = load_toy()
_, h = fit("bbb", toy.x_train, toy.y_train[:, 0], generator=torch.Generator().manual_seed(0),
           epochs={epochs}, early_stopping=False)
print(h.seconds)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trees", nargs="+", default=["src"], help="source trees (PYTHONPATH)")
    ap.add_argument("--epochs", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    best = {tree: float("inf") for tree in args.trees}
    for _ in range(args.repeats):
        for tree in args.trees:
            env = {**os.environ, "PYTHONPATH": os.path.abspath(tree)}
            out = subprocess.run([sys.executable, "-c", CHILD.format(epochs=args.epochs)],
                                 env=env, capture_output=True, text=True, check=True).stdout
            best[tree] = min(best[tree], float(out.split()[-1]))
    first = best[args.trees[0]]
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {args.epochs} epochs, "
          f"fastest of {args.repeats}")
    for tree, seconds in best.items():
        print(f"{tree:40s} {1e6 * seconds / args.epochs:8.1f} us/epoch  "
              f"x{first / seconds:.3f} vs {args.trees[0]}")


if __name__ == "__main__":
    main()
