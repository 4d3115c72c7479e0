"""CELLBLOCK_REDIS_URL's forms (core/redis_client.py) and how logs show them (core/settings.py):
what a redis+sentinel:// URL names, what it refuses, and that no password is ever shown."""

from __future__ import annotations

import pytest

from core import redis_client, settings


def test_a_sentinel_url_names_its_sentinels_service_and_the_primarys_auth() -> None:
    url = (
        "rediss+sentinel://app:s3cret@10.0.0.1:26379,10.0.0.2,[::1]:26380/jobs/2?sentinel_password=sp&ssl_ca_certs=/ca"
    )
    target = redis_client.sentinel_service(url)
    assert target is not None
    assert target.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 26380))
    assert target.service == "jobs"
    assert target.primary == {"db": 2, "username": "app", "password": "s3cret", "ssl": True, "ssl_ca_certs": "/ca"}
    assert target.sentinel == {"password": "sp"}


def test_a_sentinel_urls_query_is_typed_as_redis_py_types_its_own() -> None:
    target = redis_client.sentinel_service("redis+sentinel://h/svc?socket_timeout=5&ssl_check_hostname=false")
    assert target is not None
    assert target.primary == {"db": 0, "socket_timeout": 5.0, "ssl_check_hostname": False}
    with pytest.raises(ValueError, match="socket_timeout"):
        redis_client.sentinel_service("redis+sentinel://h/svc?socket_timeout=soon")


def test_other_urls_are_redis_pys_own() -> None:
    for url in ("redis://127.0.0.1:6379/0", "rediss://u:p@h:6380/1?ssl_ca_certs=/ca", "unix:///run/r.sock?db=0"):
        assert redis_client.sentinel_service(url) is None


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://h:26379",
        "redis+sentinel://h:26379/",
        "redis+sentinel://h:26379/svc/0/x",
        "redis+sentinel://h/svc/x",
    ],
)
def test_a_sentinel_url_without_its_service_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="service"):
        redis_client.sentinel_service(url)


def test_a_sentinel_url_with_a_bad_address_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        redis_client.sentinel_service("redis+sentinel://a:26379,,b/svc")
    with pytest.raises(ValueError, match="port is a number"):
        redis_client.sentinel_service("redis+sentinel://a:port/svc")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rediss://app:s3cret@h:6380/0?ssl_ca_certs=/ca", "rediss://app:***@h:6380/0?ssl_ca_certs=/ca"),
        ("redis://:s3cret@h:6379/0", "redis://:***@h:6379/0"),
        (
            "redis+sentinel://app:s3cret@a:26379,b:26379/jobs/0?sentinel_password=sp",
            "redis+sentinel://app:***@a:26379,b:26379/jobs/0?sentinel_password=***",
        ),
        ("redis://h:6379/0", "redis://h:6379/0"),
    ],
)
def test_logs_show_the_url_without_any_password(url: str, shown: str) -> None:
    cfg = settings.load({"CELLBLOCK_REDIS_URL": url})
    assert cfg.shown_redis_url() == shown
    assert "s3cret" not in cfg.shown_redis_url() and "=sp" not in cfg.shown_redis_url()


def test_a_worker_retries_for_at_least_the_time_it_is_given() -> None:
    for seconds in (0, 1, 30, 120):
        policy = redis_client.retry_policy(seconds)
        waits = [policy._backoff.compute(n) for n in range(1, policy.get_retries() + 1)]
        assert sum(waits) >= seconds and max(waits) <= redis_client.RETRY_CAP_S


def test_the_service_refuses_a_bad_redis_setting_at_start_without_showing_the_password() -> None:
    with pytest.raises(ValueError, match="CELLBLOCK_REDIS_URL: a Sentinel's port") as bad:
        settings.load({"CELLBLOCK_REDIS_URL": "redis+sentinel://app:s3cret@h:port/svc"})
    assert "s3cret" not in str(bad.value)
    with pytest.raises(ValueError, match="CELLBLOCK_REDIS_REPLICAS=-1"):
        settings.load({"CELLBLOCK_REDIS_REPLICAS": "-1"})
