"""RegistryClient.image: a whole image read back (manifest, index, config blob), every part
checked against its digest, against the in-process registry of tests/fakedocker.py.

Registries answer a blob request with a redirect to their storage on another host; the storage
here is a second server on 127.0.0.2 that records what reaches it: credentials must never.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from harness import HarnessError
from harness.release.registry import CONFIG_LIMIT, Credentials, RegistryClient, RemoteImage
from tests.fakedocker import FakeRegistry, image_manifest, sha256

USER, PASSWORD = "deploy", "s3cret"
CONFIG_JSON = {
    "architecture": "amd64",
    "os": "linux",
    "config": {"Labels": {"org.opencontainers.image.revision": "0123abc"}},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "11" * 32]},
}
CONFIG_BLOB = json.dumps(CONFIG_JSON).encode()
CONFIG = sha256(CONFIG_BLOB)
MANIFEST = image_manifest(CONFIG)
DIGEST = sha256(MANIFEST)
IMAGE = RemoteImage(DIGEST, DIGEST, CONFIG, CONFIG_JSON)


@pytest.fixture(params=["basic", "bearer"])
def fake(request: pytest.FixtureRequest) -> Iterator[FakeRegistry]:
    registry = FakeRegistry(scheme=request.param)
    registry.put("team/app", "1.0.0", MANIFEST)
    registry.put_blob("team/app", CONFIG_BLOB)
    with registry.serving():
        yield registry


@pytest.fixture
def storage() -> Iterator[FakeRegistry]:
    """Another host, the registry's blob storage: it serves whatever it is asked for."""
    with FakeRegistry(host="127.0.0.2").serving() as other:
        other.canned[f"/storage/{CONFIG}"] = (200, {}, CONFIG_BLOB)
        yield other


def client(registry: FakeRegistry) -> RegistryClient:
    return RegistryClient(registry.address, Credentials(USER, PASSWORD))


def refusal(registry: FakeRegistry, reference: str = "1.0.0") -> str:
    with pytest.raises(HarnessError) as refused:
        client(registry).image("team/app", reference)
    message = str(refused.value)
    assert "\n" not in message
    return message


def has_credentials(headers: dict[str, str]) -> bool:
    return any(key.lower() == "authorization" for key in headers)


def test_an_image_by_tag_and_by_digest(fake: FakeRegistry) -> None:
    assert client(fake).image("team/app", "1.0.0") == IMAGE
    assert client(fake).image("team/app", DIGEST) == IMAGE
    assert IMAGE.config["rootfs"]["diff_ids"] == ["sha256:" + "11" * 32]
    assert "rootfs" not in repr(IMAGE)  # the digests, not the whole config
    blob_reads = [h for _, p, h in fake.requests if p == f"/v2/team/app/blobs/{CONFIG}"]
    assert any(has_credentials(headers) for headers in blob_reads)


def index(*entries: dict[str, object]) -> bytes:
    return json.dumps({"schemaVersion": 2, "manifests": list(entries)}).encode()


def test_an_index_is_followed_to_its_linux_amd64_image(fake: FakeRegistry) -> None:
    arm = image_manifest("sha256:" + "99" * 32)
    fake.put("team/app", "arm", arm)
    body = index(
        {"digest": sha256(arm), "platform": {"os": "linux", "architecture": "arm64"}},
        {"digest": DIGEST, "platform": {"os": "linux", "architecture": "amd64"}},
    )
    fake.put("team/app", "multi", body)
    expected = RemoteImage(sha256(body), DIGEST, CONFIG, CONFIG_JSON)
    assert client(fake).image("team/app", "multi") == expected
    assert client(fake).image("team/app", sha256(body)) == expected


def test_an_index_entry_must_be_served_by_its_digest(fake: FakeRegistry) -> None:
    missing = "sha256:" + "77" * 32
    fake.put("team/app", "gone", index({"digest": missing}))
    fake.canned[f"/v2/team/app/manifests/{missing}"] = (200, {}, MANIFEST)  # other bytes
    assert f"does not serve {missing}, which index gone names" in refusal(fake, "gone")


def test_a_manifest_asked_for_by_digest_must_have_it(fake: FakeRegistry) -> None:
    other = "sha256:" + "77" * 32
    fake.canned[f"/v2/team/app/manifests/{other}"] = (200, {}, MANIFEST)
    assert refusal(fake, other) == (
        f"registry {fake.address} answered manifest {other} with bytes whose sha256 is {DIGEST}"
    )


def test_a_tampered_config_blob_is_refused(fake: FakeRegistry) -> None:
    tampered = CONFIG_BLOB.replace(b"0123abc", b"evil000")
    fake.blobs[("team/app", CONFIG)] = tampered
    assert refusal(fake) == (
        f"registry {fake.address} answered config {CONFIG} with bytes whose sha256 is "
        f"{sha256(tampered)}; refusing it"
    )


def test_an_oversized_config_blob_is_refused(fake: FakeRegistry) -> None:
    fake.blobs[("team/app", CONFIG)] = b" " * CONFIG_LIMIT + CONFIG_BLOB
    assert refusal(fake) == (
        f"registry {fake.address} answered more than 4096 KiB to read config {CONFIG}; refusing it"
    )


def test_a_config_that_is_not_a_json_object_is_refused(fake: FakeRegistry) -> None:
    config = fake.put_blob("team/app", b"[]")
    fake.put("team/app", "list", image_manifest(config))
    assert (
        refusal(fake, "list") == f"registry {fake.address}'s config {config} is not a JSON object"
    )


def test_a_config_with_an_integer_python_will_not_convert_is_refused(fake: FakeRegistry) -> None:
    """PoC: more than 4,300 digits raised CPython's ValueError, a traceback."""
    config = fake.put_blob("team/app", b'{"architecture": 1' + b"0" * 5000 + b"}")
    fake.put("team/app", "big", image_manifest(config))
    assert refusal(fake, "big") == f"registry {fake.address}'s config {config} is not a JSON object"


def test_a_missing_image_or_config_is_refused(fake: FakeRegistry) -> None:
    assert refusal(fake, "9.9.9") == f"registry {fake.address} has no manifest 9.9.9 in team/app"
    del fake.blobs[("team/app", CONFIG)]
    assert refusal(fake) == f"registry {fake.address} could not read config {CONFIG}: 404"


@pytest.mark.parametrize("reference", ["../x", "sha256:abc", "a:b", "", "-tag"])
def test_references_that_are_neither_tag_nor_digest(reference: str) -> None:
    with pytest.raises(HarnessError, match="is neither a tag nor a sha256 digest"):
        RegistryClient("127.0.0.1:1", None).image("team/app", reference)


def test_a_repository_outside_the_grammar_is_refused() -> None:
    with pytest.raises(HarnessError, match="is not a docker repository name"):
        RegistryClient("127.0.0.1:1", None).image("../app", "1.0.0")


# --- blobs in storage elsewhere ---------------------------------------------------------------


def test_a_blob_redirected_elsewhere_is_fetched_there_without_credentials(
    fake: FakeRegistry, storage: FakeRegistry
) -> None:
    fake.blob_redirect = f"http://{storage.address}/storage/"
    assert client(fake).image("team/app", "1.0.0") == IMAGE
    [(_, path, headers)] = storage.requests
    assert path == f"/storage/{CONFIG}?signature=fake"
    assert not has_credentials(headers)
    redirected = [h for _, p, h in fake.requests if p == f"/v2/team/app/blobs/{CONFIG}"]
    assert has_credentials(redirected[-1])  # the registry itself was asked with them


def test_a_401_from_storage_is_not_the_registrys_challenge(
    fake: FakeRegistry, storage: FakeRegistry
) -> None:
    fake.blob_redirect = f"http://{storage.address}/storage/"
    challenge = f'Bearer realm="http://{storage.address}/token",service="storage"'
    storage.canned[f"/storage/{CONFIG}"] = (401, {"WWW-Authenticate": challenge}, b"")
    assert refusal(fake) == f"registry {fake.address} could not read config {CONFIG}: 401"
    assert len(storage.requests) == 1


@pytest.mark.parametrize(
    ("location", "refused"),
    [
        ("http://storage.example/", "only https is followed elsewhere"),
        ("ftp://127.0.0.2/", "only https is followed elsewhere"),
        ("https://{storage}/storage/", r"does not answer \(SSLError\)"),  # https is followed
    ],
)
def test_where_a_blob_redirect_may_lead(
    fake: FakeRegistry, storage: FakeRegistry, location: str, refused: str
) -> None:
    fake.blob_redirect = location.format(storage=storage.address)
    with pytest.raises(HarnessError, match=refused):
        client(fake).image("team/app", "1.0.0")


@pytest.mark.parametrize(
    ("registry", "target", "allowed"),
    [
        ("registry.example", "https://storage.example/b?sig=1", True),
        ("127.0.0.1:5000", "http://127.0.0.2:9000/b", True),
        ("registry.example", "http://storage.example/b", False),
        ("registry.example", "http://127.0.0.1/b", False),  # plain http only from loopback
        ("127.0.0.1:5000", "file:///etc/passwd", False),
    ],
)
def test_the_blob_redirect_policy(registry: str, target: str, allowed: bool) -> None:
    origin = f"https://{registry}/v2/team/app/blobs/{CONFIG}"
    leave = RegistryClient(registry, None)._same_origin
    if allowed:
        assert leave(origin, target, "read config", elsewhere=True) is False
    else:
        with pytest.raises(HarnessError, match="only https is followed elsewhere"):
            leave(origin, target, "read config", elsewhere=True)
    with pytest.raises(HarnessError, match="never redirected elsewhere"):
        leave(origin, target, "read config", elsewhere=False)


def test_a_manifest_redirected_elsewhere_is_still_refused(
    fake: FakeRegistry, storage: FakeRegistry
) -> None:
    location = f"http://{storage.address}/storage/{DIGEST}"
    fake.canned["/v2/team/app/manifests/1.0.0"] = (307, {"Location": location}, b"")
    assert "requests with credentials are never redirected elsewhere" in refusal(fake)
    assert storage.requests == []
