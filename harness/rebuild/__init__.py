"""Rebuilding a commit from nothing and comparing the result: ``nox -s repro`` and ``verify``.

``repro`` rebuilds the commit ``dist/image.json`` records and compares with that record (and,
file by file, with ``dist/image.tar``); ``verify REF`` rebuilds the commit a registry image's
revision label names and compares with what the registry serves. Both say in one line whether
the image is exactly its source, and on a difference name the layer and the files.
"""
