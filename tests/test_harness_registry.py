"""The registry client against a small in-process registry on 127.0.0.1 (tests/fakedocker.py).

The stand-in speaks the two auth schemes real registries use: HTTP basic (distribution with
htpasswd) and the bearer-token challenge (GHCR, Docker Hub). A second server on 127.0.0.2,
"another host", records whatever reaches it: credentials must never.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from harness import HarnessError
from harness.release.registry import (
    TOKEN_LIMIT,
    Credentials,
    RegistryClient,
    base_url,
    check_registry,
    check_repository,
    parse_challenge,
)
from tests.fakedocker import FakeRegistry, image_manifest, sha256
from tests.serving import refused_port

USER, PASSWORD = "deploy", "s3cret"
CONFIG = "sha256:" + "ab" * 32
MANIFEST = image_manifest(CONFIG)
DIGEST = sha256(MANIFEST)


@pytest.fixture(params=["basic", "bearer"])
def fake(request: pytest.FixtureRequest) -> Iterator[FakeRegistry]:
    registry = FakeRegistry(scheme=request.param)
    registry.put("team/app", "1.0.0", MANIFEST)
    registry.put("team/app", "latest", MANIFEST)
    with registry.serving():
        yield registry


@pytest.fixture
def bearer() -> Iterator[FakeRegistry]:
    registry = FakeRegistry(scheme="bearer")
    registry.put("team/app", "1.0.0", MANIFEST)
    with registry.serving():
        yield registry


@pytest.fixture
def elsewhere() -> Iterator[FakeRegistry]:
    """Another host: anything it receives was sent where it must not go."""
    with FakeRegistry(host="127.0.0.2", scheme="basic").serving() as other:
        yield other


def client(registry: FakeRegistry, **kwargs: object) -> RegistryClient:
    return RegistryClient(registry.address, Credentials(USER, PASSWORD), **kwargs)  # type: ignore[arg-type]


def test_login_tags_and_digests_with_valid_credentials(fake: FakeRegistry) -> None:
    registry = client(fake)
    registry.check_login("team/app")
    assert registry.tags("team/app") == ["1.0.0", "latest"]
    assert registry.tags("team/unknown") == []
    assert registry.manifest_digest("team/app", "1.0.0") == DIGEST
    assert registry.manifest_digest("team/app", "9.9.9") is None
    assert registry.image_config("team/app", "latest") == (DIGEST, CONFIG)
    assert registry.image_config("team/app", "9.9.9") is None


def test_bearer_flow_asks_the_realm_for_a_scoped_token(fake: FakeRegistry) -> None:
    client(fake).tags("team/app")
    token_requests = [path for _, path, _ in fake.requests if path.startswith("/token")]
    if fake.scheme == "bearer":
        assert token_requests == [
            "/token?service=fake.registry&scope=repository%3Ateam%2Fapp%3Apull"
        ]
    else:
        assert token_requests == []


def test_wrong_or_missing_credentials_are_refused(fake: FakeRegistry) -> None:
    for credentials in (Credentials(USER, "wrong"), None):
        registry = RegistryClient(fake.address, credentials)
        with pytest.raises(HarnessError, match=r"refused the credentials \(401\)"):
            registry.check_login("team/app")
        with pytest.raises(HarnessError, match="could not list tags: 401"):
            registry.tags("team/app")


def test_registry_that_does_not_answer() -> None:
    with refused_port() as port:
        registry = RegistryClient(f"127.0.0.1:{port}", None, timeout=2)
        with pytest.raises(HarnessError, match=r"does not answer \(ConnectionError\)"):
            registry.check_login("team/app")


def test_password_is_not_in_the_repr() -> None:
    assert PASSWORD not in repr(Credentials(USER, PASSWORD))


@pytest.mark.parametrize(
    ("registry", "url"),
    [
        ("127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("localhost:5000", "http://localhost:5000"),
        ("[::1]:5000", "http://[::1]:5000"),
        ("ghcr.io", "https://ghcr.io"),
        ("registry.example.com:443", "https://registry.example.com:443"),
    ],
)
def test_base_url_is_plain_http_only_on_loopback(registry: str, url: str) -> None:
    assert base_url(registry) == url


# --- where credentials may go ---------------------------------------------------------------


def test_credentials_never_go_to_a_realm_on_another_host(
    bearer: FakeRegistry, elsewhere: FakeRegistry
) -> None:
    bearer.realm = f"http://{elsewhere.address}/token"
    with pytest.raises(HarnessError) as refused:
        client(bearer).check_login("team/app")
    assert str(refused.value) == (
        f"registry {bearer.address} sends us to token realm host 127.0.0.2, which is neither "
        "the registry's host nor allowed for it; nothing was sent there (allow it with "
        "DEATHSTAR_REGISTRY_AUTH_HOSTS=127.0.0.2 if it is the registry's own)"
    )
    assert elsewhere.requests == []


def test_an_allowed_realm_host_gets_them(bearer: FakeRegistry, elsewhere: FakeRegistry) -> None:
    bearer.realm = f"http://{elsewhere.address}/token"
    elsewhere.token = bearer.token
    client(bearer, auth_hosts={"127.0.0.2"}).check_login("team/app")
    assert [path.split("?")[0] for _, path, _ in elsewhere.requests] == ["/token"]


# (registry, the realm its challenge names): what the refusal says
REALM_REFUSALS = {
    ("registry.example", "http://registry.example/token"): "plain-http token realm",
    ("registry.example", "https://evil.example/token"): "token realm host evil.example",
    ("registry.example", "https://registry.example.evil/t"): "host registry.example.evil",
    ("registry-1.docker.io", "http://auth.docker.io/token"): "plain-http token realm",
    ("127.0.0.1:5000", "http://127.0.0.2:5000/token"): "token realm host 127.0.0.2",
    ("127.0.0.1:5000", "file:///etc/passwd"): "not a URL",
    ("127.0.0.1:5000", "//127.0.0.1/token"): "not a URL",
}


@pytest.mark.parametrize(("challenge", "refusal"), REALM_REFUSALS.items())
def test_realm_policy_refusals(challenge: tuple[str, str], refusal: str) -> None:
    registry, realm = challenge
    with pytest.raises(HarnessError, match=refusal):
        RegistryClient(registry, None).check_realm(realm)


@pytest.mark.parametrize(
    ("registry", "realm"),
    [
        ("ghcr.io", "https://ghcr.io/token"),
        ("registry-1.docker.io", "https://auth.docker.io/token"),
        ("REGISTRY.example:443", "https://registry.example/token"),
        ("127.0.0.1:5000", "http://127.0.0.1:5001/token"),
    ],
)
def test_realm_policy_allows(registry: str, realm: str) -> None:
    RegistryClient(registry, None).check_realm(realm)


def test_redirect_to_another_host_is_not_followed(
    fake: FakeRegistry, elsewhere: FakeRegistry
) -> None:
    fake.canned["/v2/"] = (307, {"Location": f"http://{elsewhere.address}/v2/"}, b"")
    with pytest.raises(HarnessError, match=r"redirected answer /v2/ to http://127\.0\.0\.2:"):
        client(fake).check_login("team/app")
    assert elsewhere.requests == []


def test_redirect_on_the_same_host_is_followed(fake: FakeRegistry) -> None:
    fake.canned["/v2/"] = (302, {"Location": "/v2/team/app/tags/list"}, b"")
    client(fake).check_login("team/app")
    fake.canned["/v2/"] = (302, {"Location": "/v2/"}, b"")
    with pytest.raises(HarnessError, match="redirected more than 3 times"):
        client(fake).check_login("team/app")


# --- hostile answers: one line each, no traceback ---------------------------------------------


@pytest.mark.parametrize(
    ("answer", "refusal"),
    [
        ((200, {}, b"<html>login</html>"), "token realm 127.0.0.1's answer is not a JSON object"),
        ((200, {}, b'["tok"]'), "token realm 127.0.0.1's answer is not a JSON object"),
        ((200, {}, b'{"expires_in": 60}'), "answered 200 without a usable token"),
        ((200, {}, b'{"token": "a\\r\\nX-Evil: 1"}'), "answered 200 without a usable token"),
        ((500, {}, b""), "token realm 127.0.0.1 answered 500"),
        (
            (200, {}, json.dumps({"token": "t", "pad": "x" * TOKEN_LIMIT}).encode()),
            "answered more than 64 KiB to fetch a token",
        ),
    ],
)
def test_hostile_token_answers_are_refused(
    bearer: FakeRegistry, answer: tuple[int, dict[str, str], bytes], refusal: str
) -> None:
    bearer.canned["/token"] = answer
    with pytest.raises(HarnessError, match=refusal):
        client(bearer).check_login("team/app")


def test_chunked_oversized_token_answer_is_refused(bearer: FakeRegistry) -> None:
    # no Content-Length to go by: the cap applies while reading
    body = json.dumps({"token": "t", "pad": "x" * TOKEN_LIMIT}).encode()
    bearer.canned["/token"] = (200, {"Content-Length": ""}, body)
    with pytest.raises(HarnessError, match="answered more than 64 KiB"):
        client(bearer).check_login("team/app")


def test_bearer_challenge_without_realm_is_refused(bearer: FakeRegistry) -> None:
    bearer.canned["/v2/"] = (401, {"WWW-Authenticate": 'Bearer service="x"'}, b"")
    with pytest.raises(HarnessError, match="asks for a bearer token but names no realm"):
        client(bearer).check_login("team/app")


@pytest.mark.parametrize(
    ("body", "refusal"),
    [
        (b"<html>", "manifest 1.0.0 is not a JSON object"),
        (b"[]", "manifest 1.0.0 is not a JSON object"),
        (b'{"schemaVersion": 2}', "manifest 1.0.0 names no sha256 config digest"),
        (b'{"config": {"digest": "sha256:../../x"}}', "names no sha256 config digest"),
        (b'{"manifests": "x"}', "index 1.0.0 names no single linux/amd64 image"),
        (b'{"manifests": [{"digest": "sha256:../x"}]}', "names no single linux/amd64 image"),
        (b"{" * 100_000, "is not a JSON object"),
    ],
)
def test_hostile_manifests_are_refused(fake: FakeRegistry, body: bytes, refusal: str) -> None:
    fake.put("team/app", "1.0.0", body)
    with pytest.raises(HarnessError, match=refusal):
        client(fake).image_config("team/app", "1.0.0")


def test_oversized_manifest_is_refused(fake: FakeRegistry) -> None:
    fake.put("team/app", "1.0.0", b" " * (4 * 1024 * 1024 + 1) + MANIFEST)
    with pytest.raises(HarnessError, match=r"answered more than 4096 KiB to read manifest 1\.0\.0"):
        client(fake).image_config("team/app", "1.0.0")


def test_manifest_whose_bytes_do_not_match_its_digest_header(fake: FakeRegistry) -> None:
    fake.canned["/v2/team/app/manifests/1.0.0"] = (
        200,
        {"Docker-Content-Digest": "sha256:" + "0" * 64},
        MANIFEST,
    )
    with pytest.raises(HarnessError, match="do not match its Docker-Content-Digest"):
        client(fake).manifest_digest("team/app", "1.0.0")


def index(*entries: dict[str, object]) -> bytes:
    return json.dumps({"schemaVersion": 2, "manifests": list(entries)}).encode()


def test_an_index_is_followed_to_its_linux_amd64_image(fake: FakeRegistry) -> None:
    arm = image_manifest("sha256:" + "99" * 32)
    fake.put("team/app", "arm", arm)
    fake.put("team/app", "amd", MANIFEST)
    body = index(
        {"digest": sha256(arm), "platform": {"os": "linux", "architecture": "arm64"}},
        {"digest": DIGEST, "platform": {"os": "linux", "architecture": "amd64"}},
    )
    fake.put("team/app", "multi", body)
    assert client(fake).image_config("team/app", "multi") == (sha256(body), CONFIG)
    single = index({"digest": DIGEST})  # the only entry, platform or not
    fake.put("team/app", "single", single)
    assert client(fake).image_config("team/app", "single") == (sha256(single), CONFIG)


def test_an_index_entry_must_be_served_by_its_digest(fake: FakeRegistry) -> None:
    missing = "sha256:" + "77" * 32
    fake.put("team/app", "gone", index({"digest": missing}))
    with pytest.raises(HarnessError, match=f"does not serve {missing}, which index gone names"):
        client(fake).image_config("team/app", "gone")
    fake.canned[f"/v2/team/app/manifests/{missing}"] = (200, {}, MANIFEST)  # other bytes
    with pytest.raises(HarnessError, match=f"does not serve {missing}"):
        client(fake).image_config("team/app", "gone")


def test_hostile_tag_lists_are_refused(fake: FakeRegistry) -> None:
    fake.canned["/v2/team/app/tags/list"] = (200, {}, b'{"tags": [1, 2]}')
    with pytest.raises(HarnessError, match="tag list is not a list of names"):
        client(fake).tags("team/app")


def test_a_dripping_registry_meets_the_deadline(fake: FakeRegistry) -> None:
    """requests' timeout is per socket read; a byte every 20 ms never trips it.

    The worker is still reading the dripped head at the deadline: the caller gives up on it
    after ``grace`` (1 s by default, 0.05 s here).
    """
    fake.drip = 0.02
    with pytest.raises(HarnessError, match=r"did not answer /v2/ within 0\.3 s"):
        client(fake, timeout=5.0, deadline=0.3, grace=0.05).check_login("team/app")


# --- parsing what we are given ----------------------------------------------------------------


BEARER = 'Bearer realm="https://r.example/token",service="r.example",scope="repository:a:pull"'


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        (
            BEARER,
            (
                "bearer",
                {
                    "realm": "https://r.example/token",
                    "service": "r.example",
                    "scope": "repository:a:pull",
                },
            ),
        ),
        ('Basic realm="a \\"quoted\\" realm"', ("basic", {"realm": 'a "quoted" realm'})),
        (
            "Bearer realm=https://r.example/t, service=s",
            ("bearer", {"realm": "https://r.example/t", "service": "s"}),
        ),
        ('Bearer realm="a", Basic realm="b"', ("bearer", {"realm": "a"})),
        ("", ("", {})),
        ("Bearer", ("bearer", {})),
    ],
)
def test_parse_challenge(header: str, parsed: tuple[str, dict[str, str]]) -> None:
    assert parse_challenge(header) == parsed


def test_a_challenge_naming_its_realm_twice_is_refused() -> None:
    with pytest.raises(HarnessError, match="names realm twice"):
        parse_challenge('Bearer realm="https://ghcr.io/token",REALM="http://127.0.0.2/"')


@pytest.mark.parametrize(
    "registry",
    ["ghcr.io", "localhost", "localhost:5000", "127.0.0.1:5000", "[::1]:5000", "a-b.example:1"],
)
def test_registry_names_docker_reads_as_hosts(registry: str) -> None:
    check_registry(registry)


@pytest.mark.parametrize(
    "registry",
    [
        "myregistry",  # docker would read it as a Docker Hub namespace
        "ghcr.io/evil",
        "ghcr.io:99999",
        "https://ghcr.io",
        "user@ghcr.io",
        "-ghcr.io",
        "ghcr.io\n",
        "",
    ],
)
def test_registry_names_that_are_refused(registry: str) -> None:
    with pytest.raises(HarnessError, match="is not a registry host"):
        check_registry(registry)


@pytest.mark.parametrize(
    "repository",
    ["Tea/app", "team//app", "team/app:tag", "team/app@sha256:x", "../app", "app-", "", "a" * 300],
)
def test_repository_names_that_are_refused(repository: str) -> None:
    with pytest.raises(HarnessError, match="is not a docker repository name"):
        check_repository("ghcr.io", repository)


def test_repository_names_in_the_grammar() -> None:
    for repository in ("tea-n-tech/deathstar", "a/b__c/d.e", "x--y"):
        check_repository("ghcr.io", repository)
