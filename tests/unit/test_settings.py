"""Settings: every invalid environment value is rejected at start-up with a readable message."""

from __future__ import annotations

import pytest

from celery_warden.errors import SettingsError
from celery_warden.settings import WardenSettings, env_var_for, load_settings

ALL_VARS = [env_var_for(name) for name in WardenSettings.model_fields]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A monkeypatch with every variable Warden reads removed from the environment."""
    for var in ALL_VARS:
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.lower(), raising=False)
    return monkeypatch


def invalid(env: pytest.MonkeyPatch, **values: str) -> str:
    for var, value in values.items():
        env.setenv(var, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    return str(info.value)


@pytest.mark.parametrize(
    ("var", "value", "accepted"),
    [
        ("CELERY_LOG_LEVEL", "LOUD", "'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL'"),
        ("CELERY_JSON_LOGS", "maybe", "expected true/false"),
        ("CELERY_WORKER_CONCURRENCY", "0", "greater than or equal to 1"),
        ("CELERY_WORKER_CONCURRENCY", "-1", "greater than or equal to 1"),
        ("CELERY_WORKER_CONCURRENCY", "abc", "expected a number"),
        ("CELERY_WORKER_PREFETCH", "0", "greater than or equal to 1"),
        ("CELERY_WORKER_PREFETCH", "many", "expected a number"),
        ("REDIS_URL", "http://127.0.0.1:6379/0", "redis://, rediss://, valkey:// or unix://"),
        ("WARDEN_KEY_PREFIX", "my fleet", "letters, digits and _.:-"),
        ("WARDEN_FLUSH_INTERVAL", "0", "greater than 0"),
        ("WARDEN_FLUSH_INTERVAL", "5.5", "less than or equal to 5"),
        ("WARDEN_TASK_TTL", "59", "greater than or equal to 60"),
        ("WARDEN_BUFFER_SIZE", "10", "greater than or equal to 100"),
        ("WARDEN_RABBITMQ_QUEUE_ARGUMENTS", "policy", "'priority', 'all' or 'none'"),
    ],
)
def test_invalid_value_names_variable_and_accepted_values(env, var, value, accepted):
    """An invalid value raises SettingsError naming the variable, the value and what is accepted."""
    message = invalid(env, **{var: value})
    assert f"{var}={value!r} is invalid" in message
    assert accepted in message


def test_offline_after_must_exceed_heartbeat_interval(env):
    """WARDEN_WORKER_OFFLINE_AFTER <= WARDEN_HEARTBEAT_INTERVAL is rejected, naming both."""
    message = invalid(env, WARDEN_HEARTBEAT_INTERVAL="10", WARDEN_WORKER_OFFLINE_AFTER="10")
    assert "WARDEN_WORKER_OFFLINE_AFTER=" in message
    assert "greater than WARDEN_HEARTBEAT_INTERVAL=10.0" in message
    message = invalid(env, WARDEN_HEARTBEAT_INTERVAL="10", WARDEN_WORKER_OFFLINE_AFTER="5")
    assert "WARDEN_WORKER_OFFLINE_AFTER=" in message


def test_settings_error_is_a_value_error(env):
    """SettingsError is catchable as ValueError and is not a pydantic ValidationError."""
    env.setenv("CELERY_WORKER_CONCURRENCY", "0")
    with pytest.raises(ValueError) as info:
        load_settings()
    assert type(info.value) is SettingsError
    assert "pydantic" not in str(info.value)


def test_every_invalid_variable_is_listed_at_once(env):
    """Several invalid values (field and cross-field checks alike) are all reported together."""
    message = invalid(
        env,
        CELERY_LOG_LEVEL="LOUD",
        CELERY_WORKER_CONCURRENCY="0",
        WARDEN_KEY_PREFIX="a b",
        REDIS_URL="http://example",
        WARDEN_HEARTBEAT_INTERVAL="10",
        WARDEN_WORKER_OFFLINE_AFTER="3",
    )
    lines = message.splitlines()[1:]
    for var in ("CELERY_LOG_LEVEL", "CELERY_WORKER_CONCURRENCY", "WARDEN_KEY_PREFIX",
                "REDIS_URL", "WARDEN_WORKER_OFFLINE_AFTER"):
        assert sum(line.strip().startswith(f"{var}=") for line in lines) == 1, (var, message)
    assert len(lines) == 5


def test_lower_case_log_level_is_accepted(env):
    """CELERY_LOG_LEVEL is case-insensitive and surrounding blanks are ignored."""
    env.setenv("CELERY_LOG_LEVEL", " debug ")
    assert load_settings().log_level == "DEBUG"


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("1", True), ("yes", True),
                                              ("off", False), ("0", False)])
def test_json_logs_accepts_common_booleans(env, raw, expected):
    """CELERY_JSON_LOGS understands the usual spellings of true and false."""
    env.setenv("CELERY_JSON_LOGS", raw)
    assert load_settings().json_logs is expected


def test_defaults_without_environment(env):
    """With nothing set, the documented defaults apply and the broker is the default Redis."""
    s = load_settings()
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.effective_broker_url == s.redis_url
    assert s.effective_result_backend == s.redis_url
    assert (s.log_level, s.json_logs, s.worker_concurrency, s.worker_prefetch) == (
        "INFO", False, 4, 1)
    assert s.key_prefix == "warden"
    assert s.offline_after > s.heartbeat_interval


def test_environment_values_are_read(env):
    """Each spec variable set in the environment ends up in the typed settings."""
    env.setenv("REDIS_URL", "redis://10.0.0.1:6380/2")
    env.setenv("CELERY_WORKER_CONCURRENCY", "8")
    env.setenv("CELERY_WORKER_PREFETCH", "4")
    env.setenv("WARDEN_KEY_PREFIX", "fleet-a")
    env.setenv("WARDEN_FLUSH_INTERVAL", "5")
    s = load_settings()
    assert s.redis_url == "redis://10.0.0.1:6380/2"
    assert (s.worker_concurrency, s.worker_prefetch) == (8, 4)
    assert s.key_prefix == "fleet-a"
    assert s.flush_interval == 5.0


def test_broker_url_falls_back_to_redis_url(env):
    """Without CELERY_BROKER_URL / CELERY_RESULT_BACKEND both use REDIS_URL; when set they win."""
    env.setenv("REDIS_URL", "redis://10.0.0.1:6379/3")
    s = load_settings()
    assert s.broker_url is None
    assert s.effective_broker_url == "redis://10.0.0.1:6379/3"
    assert s.effective_result_backend == "redis://10.0.0.1:6379/3"
    env.setenv("CELERY_BROKER_URL", "amqp://guest:guest@rabbit:5672//")
    env.setenv("CELERY_RESULT_BACKEND", "redis://10.0.0.2:6379/4")
    s = load_settings()
    assert s.effective_broker_url == "amqp://guest:guest@rabbit:5672//"
    assert s.effective_result_backend == "redis://10.0.0.2:6379/4"


@pytest.mark.parametrize(
    ("broker", "is_redis"),
    [
        ("redis://127.0.0.1:6379/0", True),
        ("rediss://cache:6380/0", True),
        ("valkey://cache:6379/0", True),
        ("sentinel://10.0.0.1:26379;sentinel://10.0.0.2:26379", True),  # kombu's Redis HA
        ("amqp://guest:guest@127.0.0.1:5672//", False),
        ("pyamqp://guest@rabbit//", False),
        ("amqps://guest@rabbit//", False),
    ],
)
def test_broker_is_redis(env, broker, is_redis):
    """broker_is_redis is true for Redis-family broker URLs and false for AMQP ones."""
    assert load_settings(CELERY_BROKER_URL=broker).broker_is_redis is is_redis


def test_keyword_overrides_beat_environment(env):
    """load_settings keyword overrides (by variable name) win over the environment."""
    env.setenv("WARDEN_KEY_PREFIX", "from-env")
    assert load_settings(WARDEN_KEY_PREFIX="from-code").key_prefix == "from-code"


def test_env_var_for_maps_fields_to_variables():
    """env_var_for names the variable behind a field, as used in error messages and docs."""
    assert env_var_for("worker_concurrency") == "CELERY_WORKER_CONCURRENCY"
    assert env_var_for("offline_after") == "WARDEN_WORKER_OFFLINE_AFTER"
    assert env_var_for("redis_url") == "REDIS_URL"


# -- secrets in settings messages ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("http://user:hunter2@h:6379/0", "'http://user:***@h:6379/0'"),
        ("Redis://:hunter2@h/0", "'Redis://:***@h/0'"),
        (" redis://:hunter2@h/0", "' redis://:***@h/0'"),  # what is wrong stays visible
        ("http://u:p@hunter2@h/0", "'http://u:***@h/0'"),  # an unencoded "@" in the password
        ("http://u:hunter2@[::1/0", "'http://u:***@[::1/0'"),  # not even parseable
        ("http://u:hun\tter2@h/0", "'http://u:***@h/0'"),  # urlsplit drops the tab
        ("u:hunter2@h", "'u:***@h'"),  # no scheme at all
    ],
)
def test_an_invalid_url_is_named_with_its_password_masked(env, value, shown):
    """REDIS_URL invalid in any way: the message names it and shows the value (so the mistake
    can be seen) with the password replaced by ***."""
    message = invalid(env, REDIS_URL=value)
    assert f"REDIS_URL={shown} is invalid" in message
    assert "hunter2" not in message and "hun\tter2" not in message


@pytest.mark.parametrize("var", ["CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "REDIS_URL"])
def test_a_url_setting_of_the_wrong_type_is_shown_masked(env, var):
    """A URL setting given in code as something else than a string (here a list) is refused
    and shown with the password inside masked too."""
    with pytest.raises(SettingsError) as info:
        load_settings(**{var: ["amqp://guest:hunter2@rabbit//"]})
    message = str(info.value)
    assert f"{var}=['amqp://guest:***@rabbit//'] is invalid" in message
    assert "hunter2" not in message


def test_secret_named_values_are_masked_in_settings_messages():
    """A value under a secret-looking name is never echoed, whatever the variable."""
    from celery_warden.settings import _describe

    line = _describe({"loc": ("WARDEN_API_TOKEN",), "input": "hunter2", "type": "string_type",
                      "msg": "Input should be a valid string"})
    assert "hunter2" not in line and "WARDEN_API_TOKEN='[redacted]' is invalid" in line
