"""The gated push behind ``nox -s push`` (``python -m harness.release``).

Every gate refuses with one line and no side effect: a dirty tree, HEAD without a release tag
equal to the package version, an image other than the one ``integration`` verified at this
commit, missing or wrong credentials, a registry that does not answer. Without ``--confirm``
it stops after the gates and prints the plan. With it, it logs in with ``--password-stdin``
into a throwaway Docker config, pushes immutable tags before moving ones, removes the
registry tags it created locally, and reads every tag's digest back from the registry.

Modules: ``gates`` (the checks and the plan), ``credentials``, ``registry`` (the v2 client),
``tags`` (which tags a release gets), ``push`` (login, push, read-back), ``__main__`` (CLI).
"""
