"""Per-epoch time of the fast engine on the post's setup, for one or more source trees.

    OMP_NUM_THREADS=1 python benchmarks/engine_epoch.py --trees /work/main/src src

Trains the ``bbb`` kind (1-20-20-1, fixed noise, full batch) on the toy data (150 rows) for
``--epochs`` epochs without early stopping, in a child process per tree and repeat (interleaved:
tree A, tree B, tree A, ...), and prints the fastest of ``--repeats`` training times per tree
(``History.seconds``: the training loop alone, no imports; and the CPU time of the fit less that
of a 1-epoch fit, which a busy neighbour disturbs less) in microseconds per epoch, with the
ratio to the first tree. Each child imports the ``varbayes`` under its tree (``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

CHILD = """
import time
import torch
from varbayes.data import load_toy
from varbayes.kinds.fitted import fit
toy = load_toy()
def run(epochs):
    cpu = time.process_time()
    _, h = fit("bbb", toy.x_train, toy.y_train[:, 0], generator=torch.Generator().manual_seed(0),
               epochs=epochs, early_stopping=False)
    return h.seconds, time.process_time() - cpu
run(10)  # warm: first calls, lazy imports
(wall, cpu), (_, cpu_setup) = run({epochs}), run(1)
print(wall, cpu - cpu_setup)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trees", nargs="+", default=["src"], help="source trees (PYTHONPATH)")
    ap.add_argument("--epochs", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    best = {tree: [float("inf")] * 2 for tree in args.trees}
    for _ in range(args.repeats):
        for tree in args.trees:
            env = {**os.environ, "PYTHONPATH": os.path.abspath(tree)}
            out = subprocess.run([sys.executable, "-c", CHILD.format(epochs=args.epochs)],
                                 env=env, capture_output=True, text=True, check=True).stdout
            times = [float(t) for t in out.split()[-2:]]
            best[tree] = [min(b, t) for b, t in zip(best[tree], times, strict=True)]
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {args.epochs} epochs, "
          f"fastest of {args.repeats}, microseconds per epoch (wall of the loop; CPU of the fit "
          "less that of a 1-epoch fit)")
    first = best[args.trees[0]]
    for tree, (wall, cpu) in best.items():
        print(f"{tree:40s} wall {1e6 * wall / args.epochs:7.1f} (x{first[0] / wall:.3f})  "
              f"cpu {1e6 * cpu / args.epochs:7.1f} (x{first[1] / cpu:.3f})")


if __name__ == "__main__":
    main()
