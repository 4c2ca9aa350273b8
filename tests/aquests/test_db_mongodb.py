"""MongoDB through pymongo's async client, against nx-27017 (or $SKITAI_TEST_MONGODB_URL)."""
from __future__ import annotations

import os
import uuid

import pytest

import aquests
from aquests import codes
from tests.support.net import free_port

pytestmark = pytest.mark.usefixtures("close_pools")


@pytest.fixture
def coll() -> str:
    return f"c{uuid.uuid4().hex[:8]}"


def make(mongo_server, **kw):
    # "host:port" for nx-27017; a real mongod from $SKITAI_TEST_MONGODB_URL may need its full URI
    server = mongo_server.url if os.environ.get("SKITAI_TEST_MONGODB_URL") else mongo_server.server
    return aquests.aio.mongodb(server, "aquests_test", **kw)


async def test_crud_and_aggregate(mongo_server, coll):
    db = make(mongo_server)
    one = await db.insert(coll, {"name": "kim", "city": "Seoul", "age": 30})
    assert one.ok and one.data is not None
    many = await db.insert(coll, [{"name": "lee", "city": "Busan", "age": 40},
                                  {"name": "park", "city": "Seoul", "age": 50}])
    assert len(many.data) == 2

    found = await db.find(coll, {"city": "Seoul"}, sort=[("age", 1)])
    assert [d.name for d in found.data] == ["kim", "park"]
    assert found.data[0]["age"] == 30
    limited = await db.find(coll, {}, {"_id": 0, "name": 1}, sort=[("age", -1)], limit=1)
    assert limited.data == [{"name": "park"}]

    doc = await db.findone(coll, {"name": "lee"})
    assert doc.data.city == "Busan"
    assert (await db.findone(coll, {"name": "nobody"})).data is None

    upd = await db.update(coll, {"city": "Seoul"}, {"$inc": {"age": 1}}, multi=True)
    assert upd.data.matched == 2 and upd.data.modified == 2
    up1 = await db.update(coll, {"name": "choi"}, {"$set": {"age": 1}}, upsert=True)
    assert up1.data.upserted_id is not None

    agg = await db.aggregate(coll, [{"$match": {"city": {"$in": ["Seoul", "Busan"]}}},
                                    {"$group": {"_id": "$city", "total": {"$sum": "$age"}}},
                                    {"$sort": {"_id": 1}}])
    assert [(d["_id"], d.total) for d in agg.data] == [("Busan", 40), ("Seoul", 82)]
    assert (await db.count(coll, {"city": "Seoul"})).data == 2

    gone = await db.delete(coll, {"city": "Seoul"})
    assert gone.data.deleted == 2
    assert (await db.count(coll)).data == 2


async def test_server_errors_are_db_errors(mongo_server, coll):
    db = make(mongo_server)
    bad = await db.aggregate(coll, [{"$nosuchstage": {}}])
    assert bad.status_code == codes.DB_ERROR and bad.expt_class is not None
    with pytest.raises(aquests.DBError):
        bad.raise_for_status()
    await db.insert(coll, {"a": 0})
    bad = await db.update(coll, {}, {"$nosuchop": {"a": 1}})
    assert bad.status_code == codes.DB_ERROR


async def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="database name"):
        aquests.aio.mongodb("127.0.0.1", "")
    db = aquests.aio.mongodb("127.0.0.1", "x")
    with pytest.raises(TypeError):
        await db.insert("c", "not a document")
    with pytest.raises(TypeError):
        await db.aggregate("c", {"$match": {}})
    stub = aquests.mongodb("127.0.0.1", "x")
    with pytest.raises(TypeError):
        stub.find("c", "name = 1")
    with pytest.raises(ValueError):
        stub.find("", {})


async def test_refused_connection():
    db = aquests.aio.mongodb(f"127.0.0.1:{free_port()}", "x", timeout=1)
    res = await db.find("c", {})
    assert res.status_code == codes.CONNECTION_REFUSED, res.reason


def test_fetchall_path(mongo_server, coll):
    got = []
    aquests.configure(workers=2, callback=got.append)
    server = mongo_server.server
    aquests.mongodb(server, "aquests_test").insert(coll, {"token": "t1", "expires": 0})
    aquests.fetchall()
    assert got[0].ok
    got.clear()

    def handle(resp, tag):
        got.append((tag, resp.data))
    aquests.configure(workers=1, callback=got.append)  # one at a time: findone runs before delete
    aquests.mongodb(server, "aquests_test", callback=(handle, ("tok",))).findone(coll, {"token": "t1"})
    aquests.mongodb(server, "aquests_test", callback=lambda r: got.append(r.data)).delete(coll, {"token": "t1"})
    aquests.fetchall()
    assert len(got) == 2
    (tag, doc), = [g for g in got if isinstance(g, tuple)]
    assert tag == "tok" and doc.token == "t1"
