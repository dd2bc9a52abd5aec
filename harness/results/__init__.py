"""The result cache: a session whose result is a function of its inputs records its pass under a
digest of those inputs, and the next run with the same digest reports it instead of running.

- ``store``: the bounded, atomic entry store (JSON data, never executed);
- ``keys``: what goes into a digest (files, interpreter, environment);
- ``sessions``: the noxfile's side: look up before installing, record after a pass.

Standard library only: the noxfile imports all three. docs/caching.md has the key and policy.
"""
