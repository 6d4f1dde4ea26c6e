"""The attack corpus: patches that tried to pass a wrong fix, or to run on the host, each graded for real.

Add every new attack here, as a real patch on the forged demo instance, run on both backends (see conftest.py).
"""
