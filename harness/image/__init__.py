"""The image: build plans, the BuildKit build, its runtime base, archives, records, dist/, SBOM.

Standard library only: ``noxfile.py`` imports ``harness.image.sessions``.
"""
