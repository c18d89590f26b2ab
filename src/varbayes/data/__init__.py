"""Data: the post's toy problem, the UCI benchmark splits, CSV files, and the standardiser.

>>> from varbayes.data import load_toy
>>> data = load_toy()
>>> data.x_train.shape, data.y_train.shape
((150, 1), (150, 1))
"""

from __future__ import annotations

from varbayes.data.csv import Table, read_csv, write_csv
from varbayes.data.toy import TOY_B0, TOY_W0, TOY_X_RANGE, ToyData, load_toy
from varbayes.data.transforms import Standardizer
from varbayes.data.uci import UCISplit, list_uci, load_uci, uci_n_splits, uci_root

__all__ = [
    "TOY_B0",
    "TOY_W0",
    "TOY_X_RANGE",
    "Standardizer",
    "Table",
    "ToyData",
    "UCISplit",
    "list_uci",
    "load_toy",
    "load_uci",
    "read_csv",
    "uci_n_splits",
    "uci_root",
    "write_csv",
]
