"""The ``iot`` method's options: validation, PEM sources, the TLS context (built once) and the
endpoint. Nothing here connects: the certificates come from an unstarted IoTCredentialsServer."""

from __future__ import annotations

import copy
import os
import pickle
import ssl
import stat
import tempfile
from pathlib import Path
from typing import Any

import pytest

from aiorefresh._fetchers import _iot_options, iot
from aiorefresh._fetchers.iot import IoTConfig, IoTCredentialFetcher, validate_iot_options
from aiorefresh.errors import ConfigurationError, ValidationError
from aiorefresh.testing import IoTCredentialsServer

ALIAS = "aiorefresh-test"
CREDENTIALS_HOST = "c2abcdefghijkl.credentials.iot.us-east-1.amazonaws.com"


@pytest.fixture
def pki() -> IoTCredentialsServer:
    """Certificates only (the server is not started)."""
    return IoTCredentialsServer(role_alias=ALIAS)


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every private temporary file written for the TLS context."""
    written: list[int] = []
    original = _iot_options._write_private

    def spy(directory: str, data: bytes) -> str:
        written.append(len(data))
        return original(directory, data)

    monkeypatch.setattr(_iot_options, "_write_private", spy)
    return written


def options_for(pki: IoTCredentialsServer, **overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "endpoint": CREDENTIALS_HOST,
        "role_alias": ALIAS,
        "certificate": pki.client_cert_pem,
        "private_key": pki.client_key_pem,
        "ca": pki.ca_pem,
    }
    options.update(overrides)
    return options


def validate(pki: IoTCredentialsServer, **overrides: Any) -> IoTConfig:
    return validate_iot_options(**options_for(pki, **overrides))


# --------------------------------------------------------------------------- endpoint


def test_a_bare_host_becomes_an_https_url(pki: IoTCredentialsServer) -> None:
    assert validate(pki, endpoint=CREDENTIALS_HOST).endpoint == f"https://{CREDENTIALS_HOST}"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://127.0.0.1:8443/", "https://127.0.0.1:8443"),
        ("HTTPS://Proxy.Example:8443/iot/", "https://proxy.example:8443/iot"),
        ("  localhost:9443 ", "https://localhost:9443"),
        ("https://[::1]:8443", "https://[::1]:8443"),
    ],
)
def test_endpoint_urls_are_normalised(pki: IoTCredentialsServer, given: str, expected: str) -> None:
    assert validate(pki, endpoint=given).endpoint == expected


@pytest.mark.parametrize(
    "host",
    [
        "c2abcdefghijkl.credentials.iot.eu-west-1.amazonaws.com",
        "c2abcdefghijkl.credentials.iot-fips.us-east-1.amazonaws.com",
        "vpce-0abc.credentials.iot.us-east-1.vpce.amazonaws.com",
        "c2abcdefghijkl.credentials.iot.cn-north-1.amazonaws.com.cn",
    ],
)
def test_credentials_provider_hosts_are_accepted(pki: IoTCredentialsServer, host: str) -> None:
    assert validate(pki, endpoint=host).endpoint == f"https://{host}"


@pytest.mark.parametrize(
    "endpoint",
    [
        "a1b2c3d4e5f6g7-ats.iot.us-east-1.amazonaws.com",
        "https://a1b2c3d4e5f6g7-ats.iot.us-east-1.amazonaws.com",
        "a1b2c3d4e5f6g7.iot.us-east-1.amazonaws.com",
        "a1b2c3d4e5f6g7.jobs.iot.us-east-1.amazonaws.com",
        "iot.us-east-1.amazonaws.com",
    ],
)
def test_data_and_other_iot_endpoints_are_refused_with_a_hint(
    pki: IoTCredentialsServer, endpoint: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        validate(pki, endpoint=endpoint)

    message = str(caught.value)
    assert "not the credentials provider endpoint" in message
    assert "aws iot describe-endpoint --endpoint-type iot:CredentialProvider" in message


def test_http_endpoint_is_refused_because_mtls_needs_https(pki: IoTCredentialsServer) -> None:
    with pytest.raises(ConfigurationError, match="https"):
        validate(pki, endpoint="http://127.0.0.1:8080")


@pytest.mark.parametrize(
    "endpoint",
    ["", "ftp://host", "https://user:pw@host", "https://host/?a=1", "https://ho st", "https://h:x"],
)
def test_malformed_endpoints_are_refused(pki: IoTCredentialsServer, endpoint: str) -> None:
    with pytest.raises(ConfigurationError, match="endpoint"):
        validate(pki, endpoint=endpoint)


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://admin:Sup3rS3cret@proxy.test",
        "http://admin:Sup3rS3cret@proxy.test:8080",
        "ftp://admin:Sup3rS3cret@proxy.test",
        "admin:Sup3rS3cret@proxy.test",
        "https://admin:Sup3rS3cret@proxy.test:notaport/",
        "https://admin:Sup3r/S3cret@proxy.test",
        "HTTP://admin:Sup3rS3cret@[::1",
    ],
)
def test_a_password_in_the_endpoint_is_never_echoed_whatever_the_scheme(
    pki: IoTCredentialsServer, endpoint: str
) -> None:
    with pytest.raises(ConfigurationError, match="must not carry credentials") as caught:
        validate(pki, endpoint=endpoint)

    assert "S3cret" not in str(caught.value)
    assert "S3cret" not in repr(caught.value)


def test_a_refused_endpoint_is_shown_without_its_query(pki: IoTCredentialsServer) -> None:
    with pytest.raises(ConfigurationError) as caught:
        validate(pki, endpoint="https://proxy.test/?X-Amz-Security-Token=tok3n")

    assert "tok3n" not in str(caught.value)
    assert "proxy.test" in str(caught.value)


def test_endpoint_of_the_wrong_type_is_a_validation_error(pki: IoTCredentialsServer) -> None:
    with pytest.raises(ValidationError, match="endpoint"):
        validate(pki, endpoint=b"host")


def test_no_endpoint_and_no_discovery_is_a_configuration_error(
    pki: IoTCredentialsServer,
) -> None:
    with pytest.raises(ConfigurationError, match="describe-endpoint"):
        validate(pki, endpoint=None)


def test_endpoint_and_discovery_together_are_refused(pki: IoTCredentialsServer) -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        validate(pki, discover_endpoint=True)


def test_discovery_can_be_configured_without_an_endpoint(pki: IoTCredentialsServer) -> None:
    config = validate(pki, endpoint=None, discover_endpoint=True)

    assert config.endpoint is None
    assert IoTCredentialFetcher(config).endpoint is None


# --------------------------------------------------------------------------- other options


@pytest.mark.parametrize("alias", ["", "has space", "slash/alias", "x" * 129, "ünïcode"])
def test_invalid_role_alias_is_a_configuration_error(pki: IoTCredentialsServer, alias: str) -> None:
    with pytest.raises(ConfigurationError, match="role_alias"):
        validate(pki, role_alias=alias)


@pytest.mark.parametrize("alias", ["a", "My_Role=Alias,x@y-z", "x" * 128])
def test_valid_role_aliases_are_accepted(pki: IoTCredentialsServer, alias: str) -> None:
    assert validate(pki, role_alias=alias).role_alias == alias


@pytest.mark.parametrize("alias", [None, 42])
def test_missing_or_non_str_role_alias_is_a_validation_error(
    pki: IoTCredentialsServer, alias: object
) -> None:
    with pytest.raises(ValidationError, match="role_alias"):
        validate(pki, role_alias=alias)


@pytest.mark.parametrize(
    ("thing", "error"),
    [
        ("", ConfigurationError),
        ("a b", ConfigurationError),
        ("x" * 129, ConfigurationError),
        (7, ValidationError),
    ],
)
def test_invalid_thing_name_is_refused(
    pki: IoTCredentialsServer, thing: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match="thing_name"):
        validate(pki, thing_name=thing)


@pytest.mark.parametrize(
    ("duration", "error"),
    [
        (899, ConfigurationError),
        (43201, ConfigurationError),
        (True, ValidationError),
        (900.0, ValidationError),
        ("900", ValidationError),
    ],
)
def test_invalid_duration_seconds_is_refused(
    pki: IoTCredentialsServer, duration: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match="duration_seconds"):
        validate(pki, duration_seconds=duration)


@pytest.mark.parametrize("duration", [900, 3600, 43200])
def test_duration_seconds_in_range_is_accepted(pki: IoTCredentialsServer, duration: int) -> None:
    assert validate(pki, duration_seconds=duration).duration_seconds == duration


@pytest.mark.parametrize(
    ("timeout", "error"),
    [
        (0, ConfigurationError),
        (-1.0, ConfigurationError),
        (float("inf"), ConfigurationError),
        (float("nan"), ConfigurationError),
        (True, ValidationError),
        ("10", ValidationError),
    ],
)
def test_invalid_timeout_is_refused(
    pki: IoTCredentialsServer, timeout: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match="timeout"):
        validate(pki, timeout=timeout)


def test_an_int_timeout_is_kept_as_float_seconds(pki: IoTCredentialsServer) -> None:
    timeout = validate(pki, timeout=3).timeout

    assert timeout == 3.0
    assert isinstance(timeout, float)


@pytest.mark.parametrize("name", ["verify_peer", "discover_endpoint"])
def test_flags_must_be_bools(pki: IoTCredentialsServer, name: str) -> None:
    with pytest.raises(ValidationError, match=name):
        validate(pki, **{name: "yes"})


def test_password_of_the_wrong_type_is_a_validation_error(pki: IoTCredentialsServer) -> None:
    with pytest.raises(ValidationError, match="private_key_password"):
        validate(pki, private_key_password=1234)


# --------------------------------------------------------------------------- PEM sources


@pytest.mark.parametrize("name", ["certificate", "private_key"])
def test_missing_certificate_or_key_is_a_validation_error(
    pki: IoTCredentialsServer, name: str
) -> None:
    with pytest.raises(ValidationError, match=name):
        validate(pki, **{name: None})


@pytest.mark.parametrize("value", [123, ["a"], object()])
def test_certificate_of_the_wrong_type_is_a_validation_error(
    pki: IoTCredentialsServer, value: object
) -> None:
    with pytest.raises(ValidationError, match="certificate must be a path"):
        validate(pki, certificate=value)


def test_pem_given_as_str_content_is_loaded_as_bytes(pki: IoTCredentialsServer) -> None:
    config = validate(
        pki,
        certificate=pki.client_cert_pem.decode(),
        private_key=pki.client_key_pem.decode(),
        ca=pki.ca_pem.decode(),
    )

    assert config.certificate_pem == pki.client_cert_pem
    assert config.private_key_pem == pki.client_key_pem
    assert config.ca_pem == pki.ca_pem
    assert config.certificate_path is None


def test_pem_given_as_bytearray_is_loaded_as_bytes(pki: IoTCredentialsServer) -> None:
    config = validate(pki, private_key=bytearray(pki.client_key_pem))

    assert config.private_key_pem == pki.client_key_pem


def test_pem_given_as_str_paths_records_the_paths(
    pki: IoTCredentialsServer, tmp_path: Path
) -> None:
    files = pki.write_files(tmp_path)

    config = validate(
        pki,
        certificate=str(files.certificate),
        private_key=str(files.private_key),
        ca=str(files.ca),
    )

    assert config.certificate_path == files.certificate
    assert config.private_key_path == files.private_key
    assert config.ca_path == files.ca
    assert config.private_key_pem == pki.client_key_pem


def test_pem_given_as_pathlib_paths_records_the_paths(
    pki: IoTCredentialsServer, tmp_path: Path
) -> None:
    files = pki.write_files(tmp_path)

    config = validate(pki, certificate=files.certificate, private_key=files.private_key)

    assert config.certificate_path == files.certificate
    assert config.certificate_pem == pki.client_cert_pem


def test_home_directory_is_expanded_in_paths(
    pki: IoTCredentialsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USERPROFILE", str(tmp_path))
    pki.write_files(tmp_path / "certs")

    config = validate(
        pki,
        certificate="~/certs/device.pem.crt",
        private_key=Path("~/certs/private.pem.key"),
        ca="~/certs/AmazonRootCA1.pem",
    )

    assert config.private_key_path == tmp_path / "certs" / "private.pem.key"


def test_encrypted_key_without_password_is_a_configuration_error(
    pki: IoTCredentialsServer,
) -> None:
    device = pki.issue_client_certificate(password="pw")

    with pytest.raises(ConfigurationError, match="private_key_password"):
        validate(pki, certificate=device.certificate_pem, private_key=device.private_key_pem)


def test_wrong_password_is_a_configuration_error_that_hides_the_password(
    pki: IoTCredentialsServer,
) -> None:
    device = pki.issue_client_certificate(password="the-right-one")

    with pytest.raises(ConfigurationError, match="private_key_password") as caught:
        validate(
            pki,
            certificate=device.certificate_pem,
            private_key=device.private_key_pem,
            private_key_password="Tr0ub4dor&3",
        )
    assert "Tr0ub4dor" not in str(caught.value)


def test_key_that_does_not_match_the_certificate_is_a_configuration_error(
    pki: IoTCredentialsServer,
) -> None:
    other = pki.issue_client_certificate(common_name="other-thing")

    with pytest.raises(ConfigurationError, match="does not match certificate"):
        validate(pki, private_key=other.private_key_pem)


def test_key_on_disk_that_does_not_match_an_in_memory_certificate_is_refused(
    pki: IoTCredentialsServer, tmp_path: Path
) -> None:
    other = pki.write_files(tmp_path, pki.issue_client_certificate(common_name="other-thing"))

    with pytest.raises(ConfigurationError, match="does not match certificate"):
        validate(pki, private_key=other.private_key)


def test_missing_file_names_the_parameter_and_the_path(
    pki: IoTCredentialsServer, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.pem.key"

    with pytest.raises(ConfigurationError, match="private_key file") as caught:
        validate(pki, private_key=missing)
    assert str(missing) in str(caught.value)


def test_unreadable_file_is_a_configuration_error(
    pki: IoTCredentialsServer, tmp_path: Path
) -> None:
    with pytest.raises(ConfigurationError, match=r"certificate file .* cannot be read"):
        validate(pki, certificate=tmp_path)


def test_non_pem_certificate_is_a_configuration_error(pki: IoTCredentialsServer) -> None:
    der = ssl.PEM_cert_to_DER_cert(pki.client_cert_pem.decode())

    with pytest.raises(ConfigurationError, match=r"^certificate"):
        validate(pki, certificate=der)


def test_corrupt_certificate_is_a_configuration_error(pki: IoTCredentialsServer) -> None:
    corrupt = b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"

    with pytest.raises(ConfigurationError, match=r"^certificate is not a valid PEM certificate"):
        validate(pki, certificate=corrupt)


def test_swapped_certificate_and_key_are_reported_as_the_certificate(
    pki: IoTCredentialsServer,
) -> None:
    with pytest.raises(ConfigurationError, match=r"^certificate") as caught:
        validate(pki, certificate=pki.client_key_pem, private_key=pki.client_cert_pem)
    key_body = pki.client_key_pem.decode().splitlines()[1]
    assert key_body not in str(caught.value)


def test_corrupt_ca_is_a_configuration_error(pki: IoTCredentialsServer) -> None:
    corrupt = b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"

    with pytest.raises(ConfigurationError, match=r"^ca"):
        validate(pki, ca=corrupt)


def test_key_material_that_is_not_pem_is_never_echoed(pki: IoTCredentialsServer) -> None:
    body = "".join(pki.client_key_pem.decode().splitlines()[1:-1])  # base64 without armour

    with pytest.raises(ConfigurationError) as caught:
        validate(pki, private_key=body + "\n")
    assert body[:20] not in str(caught.value)


# --------------------------------------------------------------------------- the TLS context


def test_the_tls_context_is_built_once_for_validation_and_every_fetcher(
    pki: IoTCredentialsServer, writes: list[int]
) -> None:
    config = validate(pki)
    fetchers = [IoTCredentialFetcher(config) for _ in range(3)]

    assert len(writes) == 1
    assert all(fetcher.config.ssl_context is config.ssl_context for fetcher in fetchers)


def test_an_in_memory_certificate_and_key_are_written_in_one_private_file(
    pki: IoTCredentialsServer, writes: list[int]
) -> None:
    validate(pki)

    assert writes == [len(pki.client_cert_pem.rstrip(b"\n") + b"\n" + pki.client_key_pem)]


def test_an_in_memory_key_with_a_certificate_path_writes_only_the_key(
    pki: IoTCredentialsServer, writes: list[int], tmp_path: Path
) -> None:
    files = pki.write_files(tmp_path)

    validate(pki, certificate=files.certificate)

    assert writes == [len(pki.client_key_pem)]


def test_paths_are_loaded_in_place_without_temporary_copies(
    pki: IoTCredentialsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writes: list[int]
) -> None:
    files = pki.write_files(tmp_path / "certs")
    made: list[str] = []
    original = tempfile.mkdtemp
    monkeypatch.setattr(tempfile, "mkdtemp", lambda **kw: made.append("x") or original(**kw))

    validate(pki, certificate=files.certificate, private_key=files.private_key)

    assert made == []
    assert writes == []


def test_in_memory_key_is_loaded_from_a_private_file_in_a_private_directory(
    pki: IoTCredentialsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[int, int]] = []
    original = ssl.SSLContext.load_cert_chain

    def spy(self: ssl.SSLContext, certfile: Any, keyfile: Any = None, password: Any = None) -> None:
        path = keyfile or certfile
        seen.append(
            (
                stat.S_IMODE(os.stat(path).st_mode),
                stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode),
            )
        )
        original(self, certfile, keyfile, password)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", spy)
    validate(pki)

    assert seen == [(0o600, 0o700)]


def test_in_memory_key_leaves_no_temporary_files_on_success_or_failure(
    pki: IoTCredentialsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    IoTCredentialFetcher(validate(pki))
    with pytest.raises(ConfigurationError):
        validate(pki, private_key=pki.issue_client_certificate().private_key_pem)

    assert list(scratch.iterdir()) == []


def test_the_context_verifies_the_server_and_needs_tls_1_2(pki: IoTCredentialsServer) -> None:
    context = validate(pki).ssl_context

    assert context.check_hostname is True
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_verify_peer_false_disables_hostname_and_certificate_checks(
    pki: IoTCredentialsServer,
) -> None:
    context = validate(pki, verify_peer=False).ssl_context

    assert context.check_hostname is False
    assert context.verify_mode == ssl.CERT_NONE


def test_the_context_is_neither_shown_nor_compared(pki: IoTCredentialsServer) -> None:
    first, second = validate(pki), validate(pki)

    assert first.ssl_context is not second.ssl_context
    assert first == second
    assert hash(first) == hash(second)
    assert "SSLContext" not in repr(first)


def test_copying_a_config_shares_its_context(pki: IoTCredentialsServer, writes: list[int]) -> None:
    config = validate(pki)

    assert copy.copy(config) is config
    assert copy.deepcopy(config) is config
    assert len(writes) == 1


def test_an_unpickled_config_is_equal_and_has_a_context_of_its_own(
    pki: IoTCredentialsServer,
) -> None:
    config = validate(pki)

    clone = pickle.loads(pickle.dumps(config))

    assert clone == config
    assert isinstance(clone.ssl_context, ssl.SSLContext)
    assert clone.ssl_context is not config.ssl_context


# --------------------------------------------------------------------------- the config value


def test_config_and_fetcher_repr_hide_key_material_and_password(
    pki: IoTCredentialsServer,
) -> None:
    device = pki.issue_client_certificate(password="hunter2-password")
    config = validate(
        pki,
        certificate=device.certificate_pem,
        private_key=device.private_key_pem,
        private_key_password="hunter2-password",
    )
    text = repr(config) + repr(IoTCredentialFetcher(config))

    assert "BEGIN" not in text
    assert "hunter2" not in text
    assert ALIAS in text


def test_the_config_is_frozen(pki: IoTCredentialsServer) -> None:
    config = validate(pki)

    with pytest.raises(AttributeError):
        config.role_alias = "other"  # type: ignore[misc]


def test_the_public_names_are_importable_from_the_iot_module() -> None:
    assert set(iot.__all__) == {
        "IoTConfig",
        "IoTCredentialFetcher",
        "PEMSource",
        "discover_credentials_endpoint",
        "validate_iot_options",
    }
    assert all(hasattr(iot, name) for name in iot.__all__)
