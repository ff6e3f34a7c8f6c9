"""/healthz: 200 with both services up; 503 naming the one that is down."""

from tests.conftest import app_overrides


def test_healthz_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "redis": "ok"}


def test_healthz_needs_no_login_and_is_json(client):
    response = client.get("/healthz")
    assert response.headers["Content-Type"].startswith("application/json")


def _app_with(**overrides):
    from webapp import create_app

    app = create_app(app_overrides(**overrides))
    return app


def test_healthz_redis_down(migrated_database):
    app = _app_with(REDIS_URL="redis://127.0.0.1:1/0")
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "down", "database": "ok", "redis": "down"}


def test_healthz_database_down(redis_conn):
    app = _app_with(DATABASE_URL="postgresql://postgres@127.0.0.1:1/nowhere")
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body == {"status": "down", "database": "down", "redis": "ok"}
    assert "127.0.0.1:1" not in response.get_data(as_text=True)
