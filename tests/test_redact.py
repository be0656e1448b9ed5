"""tiops.redact: a registered secret is hidden in every form text quotes it in.

End-to-end checks against real servers are in tests/stores/test_secrets.py.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

import pytest

from tiops.redact import redact, redact_registered, register_login, register_secret

# A generated password holds punctuation: both quotes, a backslash, '@', ':', '%', '/', a space.
PASSWORD = "CANARY-PW-x@y:z%w/q's \"h\\k"
USER = "CANARY-USER-r"


@pytest.mark.parametrize("written", [
    pytest.param(str({"note": PASSWORD}), id="str-of-a-dict"),  # a server's entry quoted in a message
    pytest.param(repr(PASSWORD), id="repr"),
    pytest.param(json.dumps({"note": PASSWORD}), id="json"),
    pytest.param("Location: /next?pw=" + quote(PASSWORD, safe=""), id="percent-encoded"),
    pytest.param("/next/" + quote(PASSWORD), id="percent-encoded-path"),
    pytest.param("a=b&pw=" + quote_plus(PASSWORD), id="form-encoded"),
])
def test_a_registered_secret_is_hidden_as_text_quotes_it(written: str) -> None:
    register_secret(PASSWORD)
    assert "CANARY" not in redact(written), written
    assert "CANARY" not in redact_registered(written), written


def test_a_secret_beyond_ascii_is_hidden_as_json_escapes_it() -> None:
    register_secret("CANARY-pässwörd")
    assert "CANARY" not in redact(json.dumps({"note": "CANARY-pässwörd"}))  # "CANARY-p\u00e4ssw\u00f6rd"


def test_basic_credentials_are_hidden_percent_encoded_in_a_url() -> None:
    # A server redirecting to a URL that echoes the Authorization header: the base64's '=' is %3D.
    register_login(USER, PASSWORD)
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert basic.endswith("=")  # the form a plain match missed
    shown = redact("Invalid JSON was received from http://h/echoed?got=" + quote("Basic " + basic, safe=""))
    assert basic.rstrip("=") not in shown and "***" in shown


@pytest.mark.parametrize("key", ["access_token", "refresh_token", "client_secret", "x-api-key", "X_Auth_Token",
                                 "db-password"])
def test_a_compound_credential_name_has_its_value_hidden(key: str) -> None:
    shown = redact(f"https://h/api/collections/c/?{key}=CANARY-unregistered-1 and {key}: CANARY-unregistered-2")
    assert "CANARY" not in shown and f"{key}=***" in shown


def test_ordinary_words_near_credential_names_are_kept() -> None:
    text = "3 tokens: kept; secretary=Ann; a-a-a"
    assert redact(text) == text


def test_redact_values_hides_registered_secrets_in_nested_json_values() -> None:
    from tiops.redact import redact_values

    register_secret("CANARY-nested-secret")
    value = {"list": ["x CANARY-nested-secret"], "CANARY-nested-secret": 1, "n": 2, "none": None}
    assert redact_values(value) == {"list": ["x ***"], "***": 1, "n": 2, "none": None}
    assert redact_values("plain") == "plain" and redact_values(7) == 7
