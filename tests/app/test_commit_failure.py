"""A 2xx is sent only when its commit holds; a failing commit answers 503, nothing saved."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from app.auth.models import Role
from app.units.models import Unit
from tests.app.conftest import session_of

FAIL_AT_COMMIT = """
CREATE FUNCTION copool_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.code = 'DOOMED' THEN RAISE EXCEPTION 'refused at commit'; END IF;
  RETURN NEW;
END $$;
CREATE CONSTRAINT TRIGGER copool_test_refuse AFTER INSERT ON units
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION copool_test_refuse();
"""


def test_a_commit_that_fails_answers_503_not_201(client, world, app):
    if app.state.engine.dialect.name != "postgresql":
        pytest.skip("a deferred trigger that fails at COMMIT is a PostgreSQL feature")
    admin = world.user("admin", "A", Role.ADMIN)
    with session_of(app) as s:
        s.execute(text(FAIL_AT_COMMIT))
        s.commit()
    try:
        answer = client.post("/units", json={"name": "Doomed", "code": "DOOMED"}, headers=admin)
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == "1"
        assert answer.json()["status"] == 503
        with session_of(app) as s:
            assert s.scalar(select(func.count()).where(Unit.code == "DOOMED")) == 0
        fine = client.post("/units", json={"name": "Fine", "code": "FINE"}, headers=admin)
        assert fine.status_code == 201
    finally:
        with session_of(app) as s:
            s.execute(text("DROP TRIGGER copool_test_refuse ON units"))
            s.execute(text("DROP FUNCTION copool_test_refuse()"))
            s.commit()
