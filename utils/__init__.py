"""Shared code of the GRU course: models, data, training, benchmarks and plotting helpers.

Each module holds one idea; notebooks import what they need, for example
``from utils.gru import GRUScratch`` or ``from utils.data import TimeMachine``.
"""
