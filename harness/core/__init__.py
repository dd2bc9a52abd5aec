"""General plumbing: processes, docker, git, locks, interpreters, untrusted JSON, provisioning.

Standard library only: ``noxfile.py`` imports from here (``tests/test_harness_layout.py``).
"""
