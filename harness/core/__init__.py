"""The harness core: everything ``noxfile.py`` imports.

Standard library only, because nox's own environment has nothing else;
``tests/test_harness_layout.py`` fails when the noxfile's imports reach further.
"""
