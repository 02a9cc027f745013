"""The top layer: the ``shoprank`` command (``cli``, ``python -m shopctl``), demo seeding and the traffic simulator.

A package of its own so the tree shows the layers: these modules may import everything, while ``shoprank`` is the
foundation near the bottom (ARCHITECTURE.md).
"""
