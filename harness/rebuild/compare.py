"""Comparing a rebuild with an image: identity first, then where and in which files they differ."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.image import archive
from harness.registry import shown

MAX_FILES = 25  # file lines shown per differing layer
MAX_CONFIG_LINES = 25  # config field lines shown


@dataclass(frozen=True)
class Identity:
    """What makes an image that image: its manifest (the image ID), config and layers."""

    image_id: str  # "" where unknown (a legacy archive)
    config_digest: str
    diff_ids: list[str]
    config: dict[str, Any] | None = None


def differences(
    expected: Identity,
    rebuilt: archive.ImageArchive,
    original: archive.ImageArchive | None = None,
) -> list[str]:
    """Empty when the rebuild is the image; else lines a developer can act on."""
    lines: list[str] = []
    if expected.image_id and rebuilt.manifest_digest != expected.image_id:
        lines.append(f"image ID: {expected.image_id} -> {rebuilt.manifest_digest}")
    if rebuilt.config_digest != expected.config_digest:
        lines.append(f"config: {expected.config_digest} -> {rebuilt.config_digest}")
        if expected.config is not None:
            lines += [
                f"  config {line}" for line in config_changes(expected.config, rebuilt.config)
            ]
    count = max(len(expected.diff_ids), len(rebuilt.diff_ids))
    for index in range(count):
        want = expected.diff_ids[index] if index < len(expected.diff_ids) else "(none)"
        got = rebuilt.diff_ids[index] if index < len(rebuilt.diff_ids) else "(none)"
        if want == got:
            continue
        lines.append(f"layer {index + 1} of {count}: {want} -> {got}")
        lines += [f"  {line}" for line in layer_changes(original, want, rebuilt, got)]
    return lines


def layer_changes(
    original: archive.ImageArchive | None,
    want: str,
    rebuilt: archive.ImageArchive,
    got: str,
) -> list[str]:
    if original is None or want not in original.diff_ids or got not in rebuilt.diff_ids:
        return ["(the files cannot be compared: no local copy of the original layer)"]
    with archive.open_layer(original, want) as stream:
        before = archive.layer_entries(stream)
    with archive.open_layer(rebuilt, got) as stream:
        after = archive.layer_entries(stream)
    changed = archive.differing_files(before, after)
    shown = changed[:MAX_FILES]
    if len(changed) > MAX_FILES:
        shown.append(f"... and {len(changed) - MAX_FILES} more files")
    return shown


def config_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The config's fields (rootfs aside) that differ, as dotted paths.

    A registry's config is untrusted: keys and values are shown escaped, on one line and
    short, and at most :data:`MAX_CONFIG_LINES` of them.
    """
    old, new = _flatten(before), _flatten(after)
    changed = [
        key
        for key in sorted(old.keys() | new.keys())
        if not key.startswith("rootfs.") and old.get(key) != new.get(key)
    ]
    lines = [
        f"{shown(key, 120)}: {shown(old.get(key, '(none)'))} -> {shown(new.get(key, '(none)'))}"
        for key in changed[:MAX_CONFIG_LINES]
    ]
    if len(changed) > MAX_CONFIG_LINES:
        lines.append(f"... and {len(changed) - MAX_CONFIG_LINES} more fields")
    return lines


def _flatten(value: object) -> dict[str, object]:
    """Leaves by dotted path; a loop, not recursion: a config may nest as deep as JSON lets it."""
    flat: dict[str, object] = {}
    pending: list[tuple[str, object]] = [("", value)]
    while pending:
        prefix, item = pending.pop()
        if isinstance(item, dict):
            pending += [(f"{prefix}{key}.", child) for key, child in item.items()]
        elif isinstance(item, list):
            pending += [(f"{prefix}{index}.", child) for index, child in enumerate(item)]
        else:
            flat[prefix.removesuffix(".")] = item
    return flat
