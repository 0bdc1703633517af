"""The DuckDB analytics store fed from the journal: complete, exactly once, across crashes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import duckdb
import msgspec
import pytest
from typer.testing import CliRunner

from marketnode.cli.main import app
from marketnode.node.client import ClientError
from marketnode.node.protocol.messages import ALERTS_TOPIC, market_topic
from marketnode.node.tools.flow import generate_flow

runner = CliRunner()
SAMPLE = Path(__file__).resolve().parents[1] / "docs" / "samples" / "orders.ndjson"


def mnode(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture
def home(tmp_path) -> Path:
    assert mnode("init", str(tmp_path / "home")).exit_code == 0
    return tmp_path / "home"


def replay(home: Path, source: Path) -> list[dict]:
    result = mnode("replay", str(source), "--home", str(home))
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def stored(home: Path, query: str) -> list[tuple]:
    connection = duckdb.connect(str(home / "analytics.duckdb"), read_only=True)
    try:
        return connection.execute(query).fetchall()
    finally:
        connection.close()


def test_every_journaled_event_once_in_order(home, tmp_path):
    printed = replay(home, SAMPLE)
    assert mnode("analytics", "sync", "--home", str(home)).exit_code == 0
    sequenced = [event for event in printed if event["seq"] is not None]
    assert stored(home, "SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM events") == [
        (len(sequenced), len(sequenced), 1, sequenced[-1]["seq"])
    ]
    kinds = dict(stored(home, "SELECT kind, count(*) FROM events GROUP BY kind"))
    assert kinds["trade"] == sum(1 for event in printed if event["event"] == "trade")

    # more commands later: only their events are added
    more = tmp_path / "more.ndjson"
    more.write_bytes(
        b"\n".join(msgspec.json.encode(c) for c in generate_flow(500, seed=8, first_id=10**6))
    )
    printed += replay(home, more)
    assert mnode("analytics", "sync", "--home", str(home)).exit_code == 0
    assert mnode("analytics", "sync", "--home", str(home)).exit_code == 0
    sequenced = [event for event in printed if event["seq"] is not None]
    assert stored(home, "SELECT count(*), count(DISTINCT seq) FROM events") == [
        (len(sequenced), len(sequenced))
    ]
    trades = {event["seq"]: event for event in printed if event["event"] == "trade"}
    rows = json.loads(mnode("trades", "--home", str(home), "--limit", "100000", "--json").stdout)
    assert len(rows) == len(trades)
    for row in rows:
        trade = trades[row["seq"]]
        assert (row["market"], row["price"], row["qty"]) == (
            trade["market"],
            trade["price"],
            trade["qty"],
        )
        assert (row["maker_owner"], row["taker_owner"]) == (
            trade["maker_owner"],
            trade["taker_owner"],
        )


def test_a_sync_killed_midway_resumes_without_gaps_or_duplicates(home, tmp_path):
    """The follower is killed inside its third transaction (rows inserted, not committed)."""
    flow = tmp_path / "flow.ndjson"
    flow.write_bytes(b"\n".join(msgspec.json.encode(c) for c in generate_flow(60_000, seed=9)))
    printed = replay(home, flow)
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from marketnode.node.analytics import batch, follower
        from marketnode.node.analytics.duckdb_store import AnalyticsStore
        from marketnode.node.store.lmdb_store import Store
        follower.ROWS_PER_WRITE = 2000
        insert, inserted = batch.Batch.insert, []
        def insert_and_hang_in_the_third(self, connection):
            insert(self, connection)
            inserted.append(self)
            if len(inserted) == 3:
                print("inside the third transaction", flush=True)
                sys.stdin.read()  # until killed
        batch.Batch.insert = insert_and_hang_in_the_third
        store = Store(Path({str(home / "data")!r}), readonly=True)
        target = AnalyticsStore(Path({str(home / "analytics.duckdb")!r}))
        follower.JournalFollower(store, target).sync()
        """
    )
    follower = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert follower.stdout.readline().strip() == "inside the third transaction"
    finally:
        follower.send_signal(signal.SIGKILL)
        follower.wait()
    partial = stored(home, "SELECT count(*) FROM events")[0][0]
    from marketnode.node.analytics.batch import SCRATCH, SCRATCH_PREFIX

    left = Path(SCRATCH or tempfile.gettempdir()) / f"{SCRATCH_PREFIX}{follower.pid}-x"
    left.mkdir(exist_ok=True)  # as a follower killed mid-write leaves its batch folder
    assert mnode("analytics", "sync", "--home", str(home)).exit_code == 0
    assert not left.exists()
    sequenced = [event["seq"] for event in printed if event["seq"] is not None]
    assert 0 < partial < len(sequenced)
    assert stored(home, "SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM events") == [
        (len(sequenced), len(sequenced), 1, max(sequenced))
    ]


def test_sql_and_trades_answer_mistakes_in_one_line(home):
    missing = mnode("sql", "SELECT 1", "--home", str(home))
    assert missing.exit_code == 4
    assert "no analytics store yet; run `mnode analytics sync`" in missing.stderr
    replay(home, SAMPLE)
    assert mnode("analytics", "sync", "--home", str(home)).exit_code == 0
    bad = mnode("sql", "SELEC nothing", "--home", str(home))
    assert bad.exit_code == 2
    assert bad.stderr.startswith("mnode: sql: ") and bad.stderr.count("\n") == 1
    counted = mnode("sql", "SELECT count(*) AS n FROM trades", "--home", str(home), "--json")
    assert json.loads(counted.stdout)[0]["n"] > 0
    csv_out = mnode(
        "sql",
        "SELECT market, count(*) AS n FROM trades GROUP BY 1 ORDER BY 1",
        "--home",
        str(home),
        "--csv",
    )
    assert csv_out.stdout.splitlines()[0] == "market,n"
    only = json.loads(mnode("trades", "--market", "LAND-ETH", "--home", str(home), "--json").stdout)
    assert only and {row["market"] for row in only} == {"LAND-ETH"}
    owner = only[0]["maker_owner"]
    mine = json.loads(mnode("trades", "--owner", owner, "--home", str(home), "--json").stdout)
    assert mine and all(owner in (row["maker_owner"], row["taker_owner"]) for row in mine)


def test_a_running_node_feeds_and_answers_its_analytics(node_factory):
    running = node_factory(
        "[analytics]\nenabled = true\ninterval_ms = 50\n",
        {"alice": ("0xa11ce",), "bob": ("0xb0b",)},
    )
    alice, bob = running.client("alice"), running.client("bob")
    alice.submit([
        {"op": "new", "market": "PUNK-ETH", "id": f"a{n}", "owner": "0xa11ce", "side": "sell",
         "price": str(100 + n), "qty": "2"}
        for n in range(5)
    ])  # fmt: skip
    reply = bob.submit([
        {"op": "new", "market": "PUNK-ETH", "id": "b1", "owner": "0xb0b", "side": "buy",
         "type": "market", "qty": "7"}
    ])  # fmt: skip
    trades = [e for e in msgspec.to_builtins(reply.events) if e["event"] == "trade"]
    assert len(trades) == 4
    admin = running.admin()
    deadline = time.monotonic() + 30
    while True:
        lag = admin.call("analytics")
        if lag["lag_commands"] == 0 and lag["position"] > 0:
            break
        assert time.monotonic() < deadline, lag
        time.sleep(0.05)
    assert lag["journal_length"] == lag["position"]
    counted = admin.call("sql", query="SELECT count(*), sum(qty) FROM trades")
    assert counted["rows"] == [[4, "7.000000000000"]]
    owner = admin.call(
        "sql", query="SELECT count(*) FROM trades WHERE taker_owner = ?", params=["0xb0b"]
    )
    assert owner["rows"] == [[4]]
    with pytest.raises(ClientError, match="send one SELECT"):
        admin.call("sql", query="DROP TABLE trades")
    with pytest.raises(ClientError, match="sql: "):
        admin.call("sql", query="SELECT nothing FROM nowhere")

    # the CLI goes through the node while it runs (the file is held by its analytics process)
    home = str(running.home.path)
    through_node = mnode("trades", "--home", home, "--json")
    assert through_node.exit_code == 0, through_node.stderr
    assert [row["seq"] for row in json.loads(through_node.stdout)] == sorted(
        (trade["seq"] for trade in trades), reverse=True
    )
    running.stop()
    direct = mnode("sql", "SELECT count(*) AS n FROM trades", "--home", home, "--json")
    assert json.loads(direct.stdout) == [{"n": 4}]


def test_views_stats_and_parquet_export(home, tmp_path):
    printed = replay(home, SAMPLE)
    assert mnode("analytics", "sync", "--home", str(home)).exit_code == 0
    trades = [event for event in printed if event["event"] == "trade"]
    by_market: dict[str, list[dict]] = {}
    for trade in trades:
        by_market.setdefault(trade["market"], []).append(trade)

    stats = json.loads(mnode("stats", "--home", str(home), "--json").stdout)
    assert [row["market"] for row in stats] == sorted(by_market)
    for row in stats:
        market_trades = by_market[row["market"]]
        assert row["trades"] == len(market_trades)
        assert row["last_price"] == market_trades[-1]["price"]
        wallets = {t["maker_owner"] for t in market_trades} | {
            t["taker_owner"] for t in market_trades
        }
        assert row["wallets"] == len(wallets)

    candles = stored(
        home,
        "SELECT market, sum(trades), max(high) FROM ohlcv(INTERVAL 1 HOUR) GROUP BY 1 ORDER BY 1",
    )
    assert [(market, count) for market, count, _ in candles] == [
        (market, len(by_market[market])) for market in sorted(by_market)
    ]
    edges = stored(home, "SELECT sum(trades) FROM counterparties")
    assert edges == [(len(trades),)]
    top = stored(home, "SELECT count(*) FROM top_wallets")
    assert top[0][0] == len({t["maker_owner"] for t in trades} | {t["taker_owner"] for t in trades})

    exported = mnode("export", "parquet", str(tmp_path / "parquet"), "--home", str(home))
    assert exported.exit_code == 0, exported.stderr
    import pyarrow.dataset as ds

    table = ds.dataset(
        tmp_path / "parquet" / "trades", format="parquet", partitioning="hive"
    ).to_table()
    assert table.num_rows == len(trades)
    assert set(table.column("market").to_pylist()) == set(by_market)
    assert (tmp_path / "parquet" / "trades" / "market=PUNK-ETH").is_dir()

    # with the node stopped, an export onto a file is one line and exit 2, not a traceback
    occupied = tmp_path / "occupied"
    occupied.write_text("")
    refused = mnode("export", "parquet", str(occupied), "--home", str(home))
    assert refused.exit_code == 2
    assert refused.stderr.startswith("mnode: export: ") and refused.stderr.count("\n") == 1


def test_a_running_node_scans_and_publishes_new_alerts(node_factory):
    import zmq

    running = node_factory(
        "[analytics]\nenabled = true\ninterval_ms = 50\n\n[integrity]\nscan_interval_s = 1\n",
        {"alice": ("0xa11ce",)},
    )
    alerts = running.raw_socket(zmq.SUB, running.address.market_data, running.keys["alice"])
    alerts.subscribe(ALERTS_TOPIC)
    alice = running.client("alice")
    _until_subscribed(alerts, alice, "0xa11ce")
    alice.submit([
        {"op": "new", "market": "PUNK-ETH", "id": "w1", "owner": "0xa11ce", "side": "sell",
         "price": "100", "qty": "3"},
        {"op": "new", "market": "PUNK-ETH", "id": "w2", "owner": "0xa11ce", "side": "buy",
         "price": "100", "qty": "3", "stp": "none"},
    ])  # fmt: skip
    topic, payload = _next_alert(alerts)
    if topic is None:  # what the process had done by then, and what it stored, to tell why
        admin = running.admin()
        stored = admin.call("sql", query="SELECT detector FROM alerts")["rows"]
        pytest.fail(f"no alert was published: {admin.call('status')['analytics']}, {stored=}")
    alert = msgspec.msgpack.decode(payload)
    assert topic == ALERTS_TOPIC
    assert (alert["detector"], alert["wallets"], alert["wash_volume"]) == (
        "self_trades", ["0xa11ce"], "300",
    )  # fmt: skip
    listed = running.admin().call("sql", query="SELECT detector FROM alerts")
    assert ["self_trades"] in listed["rows"]


def _until_subscribed(subscriber, client, owner: str) -> None:
    """A SUB's subscriptions take effect a moment after it connects (protocol.md §11), and an
    alert published before that never reaches it. Rest buys on LAND-ETH until their market
    data comes through: libzmq applies one connection's subscriptions in order, so the ones
    made before are in effect too."""
    probe_topic = market_topic("LAND-ETH")
    subscriber.subscribe(probe_topic)
    for n in range(60):
        client.submit([{"op": "new", "market": "LAND-ETH", "id": f"probe{n}", "owner": owner,
                        "side": "buy", "price": "1", "qty": "1"}])  # fmt: skip
        if subscriber.poll(500):
            break
    else:
        pytest.fail("no market data for 60 probes: the subscription never took effect")
    subscriber.unsubscribe(probe_topic)


def _next_alert(subscriber, timeout_s: float = 30.0) -> tuple[bytes | None, bytes | None]:
    """The next message on the alerts topic (market data of the probes is passed over)."""
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        if subscriber.poll(int(left * 1000) + 1):
            topic, payload = subscriber.recv_multipart()
            if topic.startswith(ALERTS_TOPIC):
                return topic, payload
    return None, None


def test_status_shows_the_analytics_lag(node_factory):
    running = node_factory(
        "[analytics]\nenabled = true\ninterval_ms = 50\n", {"alice": ("0xa11ce",)}
    )
    running.client("alice").submit([
        {"op": "new", "market": "PUNK-ETH", "id": "s1", "owner": "0xa11ce", "side": "sell",
         "price": "100", "qty": "1"},
    ])  # fmt: skip
    admin = running.admin()
    deadline = time.monotonic() + 30
    while True:
        analytics = admin.call("status")["analytics"]
        if isinstance(analytics, dict) and analytics["lag_commands"] == 0 and analytics["position"]:
            break
        assert time.monotonic() < deadline, analytics
        time.sleep(0.1)
    text = mnode("status", "--home", str(running.home.path))
    assert "analytics: running since " in text.stdout
    assert ", 0 commands (0.0 s) behind the journal" in text.stdout


def test_replay_runs_cut_at_the_stored_position_and_around_markets_commands():
    from marketnode.node.analytics.follower import _runs
    from marketnode.node.core.commands import ConfigureMarkets

    markets = ConfigureMarkets(markets=[])
    commands = ["a", "b", markets, "c", "d", "e"]
    # numbered 10..15; the store holds the events of commands before 14
    assert list(_runs(commands, 10, 14)) == [["a", "b"], [markets], ["c"], ["d", "e"]]
    assert list(_runs(commands, 10, 0)) == [["a", "b"], [markets], ["c", "d", "e"]]
    assert list(_runs(["a"], 10, 10)) == [["a"]]


def test_a_failed_write_stops_the_sync_with_its_error_and_keeps_the_position(home):
    from marketnode.node.analytics.duckdb_store import AnalyticsStore
    from marketnode.node.analytics.follower import JournalFollower
    from marketnode.node.store.lmdb_store import Store

    replay(home, SAMPLE)
    target = AnalyticsStore(home / "analytics.duckdb")
    store = Store(home / "data", readonly=True)
    try:
        target.connection.execute("DROP VIEW wallet_trades")
        target.connection.execute("DROP VIEW market_days")
        target.connection.execute("DROP VIEW top_wallets")
        target.connection.execute("DROP VIEW counterparties")
        target.connection.execute("DROP MACRO TABLE ohlcv")
        target.connection.execute("DROP TABLE trades")
        with pytest.raises(duckdb.CatalogException):
            JournalFollower(store, target).sync()
        assert target.position() == 0
    finally:
        store.close()
        target.close()


def test_alerts_found_before_the_node_says_hello_are_pushed_when_it_does(home):
    """A slow start can scan a full journal before the node's link connects: those alerts wait
    for its hello and then reach it, instead of being dropped."""
    import zmq

    from marketnode.node.analytics import service as analytics_service
    from marketnode.node.analytics.link import Hello, answer_decoder, link_encoder
    from marketnode.node.home.layout import Home

    replay(home, SAMPLE)
    service = analytics_service.AnalyticsService(Home(home), token=b"t")
    node = zmq.Context.instance().socket(zmq.DEALER)
    node.linger = 0
    try:
        service.follower.sync()
        for scanner in service.scanners.values():
            scanner.start_when_due()
            scanner.join()
        lists = service.found.qsize()
        service._push_found()  # no node yet: nothing is taken from the queue
        assert service.found.qsize() == lists
        kept = [service.found.get_nowait() for _ in range(lists)]
        for fresh in kept:
            service.found.put(fresh)
        found = sum(len(fresh) for fresh in kept)
        assert found > 0, "the sample has no alert to push"

        node.connect(Home(home).analytics_endpoint)
        node.send_multipart([b"t", link_encoder.encode(Hello())])
        assert service.socket.poll(30_000), "the hello did not arrive"
        service._answer_all()
        service._push_found()
        assert service.found.empty()
        pushed = []
        while len(pushed) < found:
            assert node.poll(30_000), f"{len(pushed)} of {found} alerts came"
            pushed.extend(answer_decoder.decode(node.recv()).alerts)
        assert len(pushed) == found
    finally:
        node.close()
        service.close()


def test_a_scan_runs_in_its_own_thread_and_a_failing_one_is_logged(home, monkeypatch, caplog):
    """The analytics process's scan threads (one per lane of detectors): alerts found go to the
    queue the main thread pushes from, detector by detector, and every detector is in one lane;
    a scan that raises is logged and the process goes on."""
    from marketnode.node.analytics import scanner as scanner_module
    from marketnode.node.analytics import service as analytics_service
    from marketnode.node.home.layout import Home
    from marketnode.plugins.host import INTEGRITY, plugin_host

    replay(home, SAMPLE)
    service = analytics_service.AnalyticsService(Home(home), token=b"t")
    try:
        service.follower.sync()
        for scanner in service.scanners.values():  # the first scans run at once
            scanner.start_when_due()
            scanner.join()
        # one list of new alerts per detector, each put as soon as its detector finished
        kept = [service.found.get_nowait() for _ in range(service.found.qsize())]
        detectors = plugin_host(INTEGRITY).hook.detect_integrity.get_hookimpls()
        assert len(kept) == len(detectors) and all(isinstance(k, list) for k in kept)
        assert all(service.lag()["scans"][lane]["scans"] == 1 for lane in service.scanners)

        def broken(connection, settings, lane):
            raise ZeroDivisionError("a detector's bug")

        monkeypatch.setattr(scanner_module, "scan_each", broken)
        for scanner in service.scanners.values():
            scanner.next_start = 0
            scanner.start_when_due()
            scanner.join()
        assert service.found.empty() and "integrity scan failed" in caplog.text
        assert service.sql("SELECT count(*) FROM trades")["ok"]
    finally:
        service.close()
