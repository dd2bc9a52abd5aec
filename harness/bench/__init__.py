"""``python -m harness.bench``: the figures behind ``nox -s bench``, measured on this machine.

- P1 rebuild after a one-line source change, ours vs ``bench/seed-style.Dockerfile``:
  (a) wall time from the edit to a tagged image, (b) bytes of the layers that are new;
- P2 image payload: image size minus base image size;
- P3 container start to the first 200 on /healthz through the published port; beside it
  the same start of our image answering from a bare socket (P3.floor) and the framework's
  import timed inside the image (P3.framework): the shares our code does not set;
- P4 the default ``nox`` pipeline, in a fresh clone and again with its venvs reused;
- P5 GET /v1/targets?limit=100 under load: requests/s, p50, p99, errors;
- P6 a session's environment: ``nox -s test-X --install-only`` with uv vs virtualenv;
- P7 and P8: the ``integration`` and ``test-X`` sessions of the reused P4 pipeline;
- P4.floor, P7.floor and P8.floor: the machine's busy CPU time while the reused pipeline ran,
  and while ``nox -s test-X -R`` and ``nox -s integration -R`` ran again alone, divided by the
  cores: the least wall time those ``nox`` commands can take on this machine.

Everything runs on a copy of the working tree, committed into a throwaway repository and
cloned from there; the edits happen in those clones, never in the checkout. Two sides of a
comparison alternate run by run. Containers carry a label naming this run, images are tagged
``deathstar-bench-*``; all of them, and the intermediate images the builds made, are removed at
the end, also when a step fails.

Modules: ``options`` (the command line), ``engine`` (Docker, and the cleanup), ``workspace``
(snapshot, clones, the two sides), ``rebuild`` (P1, P2), ``start`` (P3), ``load`` (P5),
``pipeline`` (P4, P6, P7, P8), ``cpu`` (the floors), ``machine``, ``layers`` and ``report``
(figures, table, JSON, Markdown).
"""
