"""`mnode` through typer's CliRunner: data on stdout, one-line errors on stderr, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from marketnode.cli.main import app
from marketnode.node import __version__
from marketnode.node.core.commands import decode_json_command
from marketnode.node.core.engine import Engine
from marketnode.node.home.config import default_markets
from marketnode.node.protocol.wire_events import event_record
from marketnode.node.tools.flow import generate_flow

SAMPLE = Path(__file__).resolve().parents[1] / "docs" / "samples" / "orders.ndjson"
runner = CliRunner()


def mnode(*args: str, input: str | None = None, env: dict | None = None):
    return runner.invoke(app, list(args), input=input, env=env)


@pytest.fixture
def home(tmp_path) -> Path:
    result = mnode("init", str(tmp_path / "home"))
    assert result.exit_code == 0, result.stderr
    return tmp_path / "home"


def lines_of(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_version():
    result = mnode("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"mnode {__version__}"


def test_init_creates_a_home_once(home):
    assert (home / "config.toml").is_file()
    assert (home / "data").is_dir()
    again = mnode("init", str(home))
    assert again.exit_code == 3
    assert again.stderr == f"mnode: {home}: already a node home (config.toml exists)\n"


def test_a_command_without_a_home_says_how_to_give_one():
    result = mnode("verify", env={"MNODE_HOME": ""})
    assert result.exit_code == 2
    assert result.stderr == "mnode: no node home given: pass --home DIR or set MNODE_HOME\n"


def test_a_folder_that_is_not_a_home(tmp_path):
    result = mnode("book", "PUNK-ETH", "--home", str(tmp_path))
    assert result.exit_code == 3
    assert "not a node home (config.toml missing)" in result.stderr
    assert result.stderr.count("\n") == 1


def test_a_broken_config_stops_with_one_line(home):
    config = home / "config.toml"
    config.write_text(config.read_text().replace('tick_size = "0.01"', 'tick_size = "0"', 1))
    result = mnode("replay", str(SAMPLE), "--home", str(home))
    assert result.exit_code == 3
    assert result.stderr == (
        f"mnode: {config}: market 'PUNK-ETH' (markets[0]): tick_size: must be a decimal > 0, "
        "got '0'\n"
    )
    assert result.stdout == ""


def test_replay_prints_the_engines_events_as_decimal_text(home):
    result = mnode("replay", str(SAMPLE), "--home", str(home))
    assert result.exit_code == 0, result.stderr
    printed = lines_of(result.stdout)

    engine = Engine(default_markets())
    expected = []
    for number, raw in enumerate(SAMPLE.read_bytes().splitlines(), start=1):
        try:
            command = decode_json_command(raw)
        except Exception:
            expected.append({"event": "rejected", "reason": "malformed", "line": number})
            continue
        expected.extend(event_record(e, engine.books) for e in engine.process_all([command]))
    assert len(printed) == len(expected)
    for got, want in zip(printed, expected, strict=True):
        if want.get("reason") == "malformed":
            assert (got["event"], got["reason"], got["line"]) == ("rejected", "malformed", 1504)
            assert got["seq"] is None and got["detail"]
        else:
            assert got == want
    trades = [event for event in printed if event["event"] == "trade"]
    assert trades and all(isinstance(trade["price"], str) for trade in trades)
    reasons = {event.get("reason") for event in printed if event["event"] == "rejected"}
    assert {"unknown_market", "off_tick", "qty_above_max", "malformed"} <= reasons
    assert "replayed into" in result.stderr


def test_replay_is_deterministic_across_homes(tmp_path):
    outputs = []
    for name in ("a", "b"):
        assert mnode("init", str(tmp_path / name)).exit_code == 0
        result = mnode("replay", str(SAMPLE), "--home", str(tmp_path / name))
        assert result.exit_code == 0
        outputs.append((result.stdout, result.stderr.split("state hash ")[1]))
    assert outputs[0] == outputs[1]


def test_replay_reads_stdin_and_continues_the_sequence(home):
    first = mnode(
        "replay", "-", "--home", str(home),
        input='{"op":"new","market":"PUNK-ETH","id":"q1","owner":"0xa","side":"sell","price":"12.5","qty":"3"}\n',
    )  # fmt: skip
    assert first.exit_code == 0, first.stderr
    assert [e["event"] for e in lines_of(first.stdout)] == ["accepted", "rested"]
    second = mnode(
        "replay", "-", "--home", str(home),
        input=(
            '{"op":"new","market":"PUNK-ETH","id":"q2","owner":"0xb","side":"buy","type":"market","qty":"2"}\n'
            "\n"
            '{"op":"cancel","market":"PUNK-ETH","id":"q1","owner":"0xa"}\n'
            '{"op":"cancel","market":"PUNK-ETH","id":"q1","owner":"0xa"}\n'
            '{"op":"new","market":"PUNK-ETH","id":"q3","owner":"0xb","side":"buy","price":1.5,"qty":2}\n'
            '["not", "an", "object"]\n'
        ),
    )  # fmt: skip
    assert second.exit_code == 0, second.stderr
    events = lines_of(second.stdout)
    assert [e["event"] for e in events] == [
        "accepted", "trade", "accepted", "cancelled", "rejected", "accepted", "rested", "rejected",
    ]  # fmt: skip
    assert events[0]["seq"] == 3
    assert events[1] == {
        "event": "trade", "seq": 4, "market": "PUNK-ETH", "price": "12.5", "qty": "2",
        "maker_id": "q1", "maker_owner": "0xa", "taker_id": "q2", "taker_owner": "0xb",
        "aggressor": "buy", "maker_remaining": "1", "taker_remaining": "0",
    }  # fmt: skip
    assert events[3]["reason"] == "user" and events[3]["qty"] == "1"
    assert events[4]["reason"] == "unknown_order"
    assert events[6]["price"] == "1.5" and events[6]["qty"] == "2"
    assert events[7]["reason"] == "malformed" and events[7]["line"] == 6


def test_replay_of_a_missing_file(home):
    result = mnode("replay", str(home / "nope.ndjson"), "--home", str(home))
    assert result.exit_code == 2
    assert (
        result.stderr == f"mnode: {home / 'nope.ndjson'}: cannot read: No such file or directory\n"
    )


def test_book_json_and_text(home):
    assert mnode("replay", str(SAMPLE), "--home", str(home)).exit_code == 0
    result = mnode("book", "PUNK-ETH", "--home", str(home), "--depth", "3", "--json")
    assert result.exit_code == 0, result.stderr
    book = json.loads(result.stdout)
    assert book["market"] == "PUNK-ETH"
    assert 0 < len(book["bids"]) <= 3 and 0 < len(book["asks"]) <= 3
    bid_prices = [float(level["price"]) for level in book["bids"]]
    ask_prices = [float(level["price"]) for level in book["asks"]]
    assert bid_prices == sorted(bid_prices, reverse=True)
    assert ask_prices == sorted(ask_prices)
    assert bid_prices[0] < ask_prices[0]
    assert all(level["orders"] >= 1 for level in book["bids"] + book["asks"])
    text = mnode("book", "PUNK-ETH", "--home", str(home), "--depth", "3")
    assert text.exit_code == 0
    assert text.stdout.splitlines()[0] == "PUNK-ETH"
    assert book["bids"][0]["price"] in text.stdout


def test_book_of_a_fresh_home_is_empty(home):
    result = mnode("book", "LAND-ETH", "--home", str(home), "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"market": "LAND-ETH", "bids": [], "asks": []}


def test_book_of_an_unknown_market(home):
    result = mnode("book", "NOPE-ETH", "--home", str(home))
    assert result.exit_code == 2
    assert result.stderr.startswith("mnode: unknown market 'NOPE-ETH' (markets: PUNK-ETH,")


def test_home_from_the_environment(home):
    result = mnode("book", "PUNK-ETH", "--json", env={"MNODE_HOME": str(home)})
    assert result.exit_code == 0
    assert json.loads(result.stdout)["market"] == "PUNK-ETH"


def test_verify_ok_then_diverges(home):
    assert mnode("replay", str(SAMPLE), "--home", str(home)).exit_code == 0
    ok = mnode("verify", "--home", str(home))
    assert ok.exit_code == 0, ok.stdout
    assert ok.stdout.startswith("ok: 3004 journal entries in ")
    report = json.loads(mnode("verify", "--home", str(home), "--json").stdout)
    assert report["ok"] is True and report["problems"] == []

    import lmdb

    env = lmdb.open(str(home / "data"), max_dbs=4)
    orders = env.open_db(b"orders")
    with env.begin(write=True, db=orders) as txn:
        key, _ = next(iter(txn.cursor()))
        txn.delete(key)
    env.close()
    bad = mnode("verify", "--home", str(home))
    assert bad.exit_code == 1
    assert "rests after replay but is missing from the store" in bad.stdout
    assert all(line.startswith("diverges: ") for line in bad.stdout.splitlines())
    refused = mnode("replay", str(SAMPLE), "--home", str(home))
    assert refused.exit_code == 4
    assert "do not match their state hash" in refused.stderr


def test_verify_of_a_home_never_written(home):
    result = mnode("verify", "--home", str(home))
    assert result.exit_code == 4
    assert "no store here yet" in result.stderr


def test_bench_engine_reports_both_rates():
    result = mnode("bench", "engine", "--ops", "2000", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ops"] == 2000
    assert report["ops_per_s"] > 0 and report["durable_ops_per_s"] > 0
    assert report["trades"] > 0


def test_bench_analytics_and_integrity_report_their_rates():
    result = mnode("bench", "analytics", "--ops", "2000", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ops"] == 2000 and report["events"] > 2000 and report["events_per_s"] > 0
    result = mnode("bench", "integrity", "--steps", "3000", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["trades"] > 1000 and report["detect_seconds"] > 0
    assert report["trades_per_s"] == round(report["trades"] / report["detect_seconds"])


def test_book_reads_while_another_process_writes(home, tmp_path):
    """A writer holds the store open in another process; `mnode book` still reads it."""
    commands = tmp_path / "flow.ndjson"
    commands.write_bytes(b"\n".join(msgspec.json.encode(c) for c in generate_flow(2000, seed=2)))
    writer = subprocess.Popen(
        [
            sys.executable, "-c",
            textwrap.dedent(
                f"""
                import sys
                from marketnode.node.core.commands import decode_json_command
                from marketnode.node.store.durable import DurableEngine
                from marketnode.node.home.layout import Home
                from marketnode.node.store.lmdb_store import Store
                home = Home(__import__("pathlib").Path({str(home)!r}))
                config = home.config()
                store = Store(home.store_path(config))
                durable = DurableEngine(store)
                durable.configure(config.markets)
                lines = open({str(commands)!r}, "rb").read().splitlines()
                durable.submit([decode_json_command(line) for line in lines])
                print("committed", flush=True)
                sys.stdin.readline()
                store.close()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert writer.stdout.readline().strip() == "committed"
        reader = subprocess.run(
            [
                sys.executable,
                "-m",
                "marketnode.cli",
                "book",
                "PUNK-ETH",
                "--json",
                "--home",
                str(home),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert reader.returncode == 0, reader.stderr
        assert json.loads(reader.stdout)["bids"]
        second_writer = mnode("replay", str(SAMPLE), "--home", str(home))
        assert second_writer.exit_code == 4
        assert "is writing to this store" in second_writer.stderr
    finally:
        writer.communicate("done\n", timeout=30)
    assert writer.returncode == 0


def test_bench_engine_on_a_homes_markets_and_disk(home):
    config = home / "config.toml"
    config.write_text(config.read_text().replace('sync = "full"', 'sync = "no_metasync"'))
    result = mnode("bench", "engine", "--ops", "1000", "--json", "--home", str(home))
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["sync"] == "no_metasync"
    assert report["markets"] == ["PUNK-ETH", "LAND-ETH", "GOLD-USDC"]
    assert sorted(path.name for path in home.iterdir()) == ["config.toml", "data", "keys"]


def test_an_interrupted_replay_keeps_every_printed_event(home, tmp_path):
    """Ctrl-C mid-replay: exit 130, one line, and every event printed is in the store."""
    flow = tmp_path / "long.ndjson"
    flow.write_bytes(b"\n".join(msgspec.json.encode(c) for c in generate_flow(300_000, seed=4)))
    replay = subprocess.Popen(
        [sys.executable, "-m", "marketnode.cli", "replay", str(flow), "--home", str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # read the pipe's file descriptor directly: communicate() below reads it that way too, so
    # nothing may sit in a Python-level buffer between the two
    first = os.read(replay.stdout.fileno(), 1)
    while not first.endswith(b"\n"):
        first += os.read(replay.stdout.fileno(), 65536)
    replay.send_signal(signal.SIGINT)
    rest, errors = replay.communicate(timeout=60)
    assert replay.returncode == 130, errors
    message = errors.decode()
    assert message.startswith("mnode: interrupted: everything up to seq ")
    assert message.count("\n") == 1
    printed = [json.loads(line) for line in (first + rest).splitlines()]
    committed_seq = int(message.split("up to seq ")[1].split()[0])
    assert printed and max(event["seq"] for event in printed) <= committed_seq
    verified = mnode("verify", "--home", str(home), "--json")
    report = json.loads(verified.stdout)
    assert report["ok"] and report["seq"] == committed_seq
