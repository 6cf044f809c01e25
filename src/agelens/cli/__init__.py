"""Command-line interface (``agelens ...``); see :mod:`agelens.cli.main`.

Sub-command modules import heavy libraries (TensorFlow) only inside the commands that
need them, so ``agelens --help`` stays fast.
"""
