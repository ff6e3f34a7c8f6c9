"""Token keep-alive from the clock: connections idle for a week are refreshed well inside Xero's 60 days."""

from datetime import timedelta

from rq import Queue
from sqlalchemy import select

from jobs.xero import keep_alive, keep_alive_all
from tests.xero.test_connect import connect, signed_in_admin
from webapp import crypto
from webapp.extensions import db
from webapp.models import XeroConnection, utcnow


def test_keep_alive_refreshes_idle_connections_only(xero_app, web, make_user, make_practice, redis_conn):
    north, south = make_practice("north"), make_practice("south")
    signed_in_admin(web, make_user)
    connect(web, north.id)
    connect(web, south.id, "Demo Clinic Pty Ltd")
    idle, fresh = db.session.scalars(select(XeroConnection).order_by(XeroConnection.id)).all()
    idle.last_refreshed_at = utcnow() - timedelta(days=8)
    db.session.commit()
    assert keep_alive_all() == 1
    queued = Queue("maintenance", connection=redis_conn).get_jobs()
    assert [(j.func_name, j.args) for j in queued] == [("jobs.xero.keep_alive", (idle.id,))]
    old_refresh = crypto.decrypt(idle.refresh_token_encrypted)
    assert keep_alive(idle.id) is True
    db.session.expire_all()
    row = db.session.get(XeroConnection, idle.id)
    assert crypto.decrypt(row.refresh_token_encrypted) != old_refresh
    assert utcnow() - row.last_refreshed_at < timedelta(minutes=1)


def test_keep_alive_skips_a_connection_that_needs_reconnect(xero_app, web, make_user, make_practice):
    practice = make_practice("north")
    signed_in_admin(web, make_user)
    connect(web, practice.id)
    connection = db.session.scalars(select(XeroConnection)).one()
    connection.status = "needs_reconnect"
    db.session.commit()
    assert keep_alive(connection.id) is False
    assert keep_alive_all() == 0
