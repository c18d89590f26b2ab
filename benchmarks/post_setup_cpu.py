"""The post's setup (N = 150) in CPU time: prediction and training, post ÷ varbayes, one process.

    PYTHONPATH=src python benchmarks/post_setup_cpu.py [--rounds 5]

Trains the post's network and varbayes' ``bbb`` model as ``varbayes benchmark speed`` does
(2000 full-batch epochs), then keeps the fastest of ``rounds`` post prediction loops and of
ten times as many ``predictive`` calls (150 rows x 1000 draws), and the fastest of three
trainings, all in thread CPU time (``time.thread_time``) on one thread. On a shared machine wall
times swing with the other jobs; CPU time much less. Point ``PYTHONPATH`` at another checkout
(e.g. 0.1.0 in a second worktree) to measure that one with the same script, and alternate.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch

from varbayes.benchmarks import speed


def _fastest(fn: Callable[[], Any], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.thread_time()
        fn()
        best = min(best, time.thread_time() - start)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = speed._data(150)
    x, y = data["x"], data["y"]
    torch.manual_seed(0)
    _, post = speed._post_train(x, y, 2000, 150)
    _, model = speed._varbayes_train(x, y, 2000, 150, "reparam")
    x_pred = data["x_test"][:150]
    speed._post_samples(post, x_pred, 10)
    speed._varbayes_samples(model, x_pred, 10)
    post_ms = 1e3 * _fastest(lambda: speed._post_samples(post, x_pred, 1000), args.rounds)
    vb_ms = 1e3 * _fastest(lambda: speed._varbayes_samples(model, x_pred, 1000),
                           10 * args.rounds)
    train_vb = _fastest(lambda: speed._varbayes_train(x, y, 2000, 150, "reparam"), 3) / 2
    train_post = _fastest(lambda: speed._post_train(x, y, 500, 150), 3) * 4 / 2
    print(f"predict 150 x 1000: post {post_ms:.1f} ms, varbayes {vb_ms:.2f} ms, "
          f"post / varbayes {post_ms / vb_ms:.1f} (CPU)")
    print(f"train per epoch: post {train_post:.3f} ms, varbayes {train_vb:.4f} ms, "
          f"post / varbayes {train_post / train_vb:.2f} (CPU)")


if __name__ == "__main__":
    main()
