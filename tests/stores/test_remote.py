"""What remote stores share: reading an HTTP Retry-After (RFC 9110 section 10.2.3)."""

from __future__ import annotations

import email.utils

import pytest

from tiops.stores import TransientStoreError
from tiops.stores.remote import http_failure, retry_after_seconds

NOW = 1_700_000_000.0


@pytest.mark.parametrize(("value", "seconds"), [
    ("7", 7.0), (" 120 ", 120.0), ("0", 0.0), ("0.05", 0.05),  # delay-seconds, a fraction read too
    ("123456789", 123456789.0), ("1234567890", 1e9), ("9" * 5000, 1e9),  # past nine digits: "forever"
    (email.utils.formatdate(NOW + 90, usegmt=True), 90.0),  # an HTTP-date, from now
    ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0), ("Sunday, 06-Nov-94 08:49:37 GMT", 0.0),  # in the past: no wait
    ("Sun Nov  6 08:49:37 1994", 0.0),  # the asctime form RFC 9110 still accepts
    ("inf", None), ("nan", None), ("1e9", None), ("-5", None), ("", None), ("soon", None), (None, None),
])
def test_retry_after_is_delay_seconds_or_an_http_date(value: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(value, lambda: NOW) == seconds


def test_only_transient_statuses_carry_the_wait() -> None:
    throttled = http_failure("server", 429, "30")
    assert isinstance(throttled, TransientStoreError) and throttled.retry_after == 30.0
    assert isinstance(http_failure("server", 503, "inf"), TransientStoreError)
    assert http_failure("server", 503, "inf").retry_after is None  # backed off from as without the header
    assert not isinstance(http_failure("server", 404, "30"), TransientStoreError)
