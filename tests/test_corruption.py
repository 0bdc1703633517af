"""A damaged home: flipped bytes in a real data.mdb, a journal that no longer replays to its
hashes, a damaged analytics.duckdb, a binary config.toml. Every command that meets one exits with
its code and one line on stderr, never a traceback; `mnode start` refuses a store that fails its
check, and `mnode verify` checks the analytics store against the journal."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import lmdb
import msgspec
import pytest
from typer.testing import CliRunner

from marketnode.cli.main import app
from marketnode.node.store import verify
from marketnode.node.store.lmdb_store import MAX_DATABASES, U64, Store
from marketnode.node.tools.e2e import NODE_COMMAND, prepare_home

SAMPLE = Path(__file__).resolve().parents[1] / "docs" / "samples" / "orders.ndjson"
PAGE = 4096
PAGE_FLAGS = 10
"""Offset of an LMDB page header's flags (branch, leaf, overflow, meta) in its page."""
START_WAIT_S = 60.0
runner = CliRunner()


def mnode(home: Path, *args: str):
    return runner.invoke(app, [*args, "--home", str(home)])


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A home on free loopback ports holding the sample flow's journal and books."""
    home, _ = prepare_home(tmp_path_factory.mktemp("pristine") / "home")
    replayed = mnode(home.path, "replay", str(SAMPLE))
    assert replayed.exit_code == 0, replayed.stderr
    return home.path


@pytest.fixture
def copy_of(pristine, tmp_path):
    def copy(name: str = "home") -> Path:
        target = tmp_path / name
        shutil.copytree(pristine, target)
        return target

    return copy


def flip(path: Path, offset: int, width: int = 1) -> None:
    data = bytearray(path.read_bytes())
    for index in range(offset, min(offset + width, len(data))):
        data[index] ^= 0xFF
    path.write_bytes(bytes(data))


def assert_one_line(result, codes: set[int]) -> None:
    """Exited with one of `codes`; on an error one line on stderr; never an exception."""
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in codes, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    if result.exit_code == 1:  # verify's divergence: its report on stdout, nothing on stderr
        assert result.stderr == ""
        assert all(line.startswith("diverges: ") for line in result.stdout.splitlines())
    elif result.exit_code:
        lines = [line for line in result.stderr.splitlines() if not line.startswith("mnode: warn")]
        assert len(lines) == 1 and lines[0].startswith("mnode: "), result.stderr


def run_start(home: Path) -> subprocess.CompletedProcess:
    """`mnode start` as a process; a node that starts is stopped and reported as started."""
    process = subprocess.Popen(
        [*NODE_COMMAND, "start", "--home", str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + START_WAIT_S
    while process.poll() is None and time.monotonic() < deadline:
        if (home / "node.json").exists():
            process.terminate()
            out, err = process.communicate(timeout=START_WAIT_S)
            return subprocess.CompletedProcess(process.args, 0, out, "started\n" + err)
        time.sleep(0.05)
    if process.poll() is None:
        process.kill()
    out, err = process.communicate(timeout=START_WAIT_S)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def assert_refused(completed: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert completed.returncode == code, completed.stderr
    assert "Traceback" not in completed.stderr
    lines = completed.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mnode: "), completed.stderr
    for word in words:
        assert word in lines[0]


@pytest.mark.slow
def test_every_page_with_its_type_flipped_is_one_line_for_verify_and_book(copy_of):
    """A flipped page type (branch, leaf, overflow, meta) makes LMDB raise, or abort in C;
    either is one line and exit 4 (or a divergence, exit 1), never a traceback."""
    home = copy_of()
    data = home / "data" / "data.mdb"
    original = data.read_bytes()
    damaged = 0
    for page in range(len(original) // PAGE):
        data.write_bytes(original)
        flip(data, page * PAGE + PAGE_FLAGS)
        verified = mnode(home, "verify")
        assert_one_line(verified, {0, 1, 4})
        assert_one_line(mnode(home, "book", "PUNK-ETH"), {0, 4})
        damaged += verified.exit_code != 0
    assert damaged > 10  # the sweep met real damage, not only free pages


@pytest.mark.parametrize(
    ("where", "offset", "width"),
    [
        ("meta page 0", 16, 8),  # its magic and version
        ("meta page 1", PAGE + 16, 8),
        ("both meta pages' roots", 40, 2 * PAGE),
        ("a leaf page", 8 * PAGE + 12, 4),  # free/upper bounds: LMDB asserts in C
        ("the end", -64, 64),
    ],
)
def test_flipped_bytes_are_one_line_for_verify_book_and_start(copy_of, where, offset, width):
    home = copy_of()
    data = home / "data" / "data.mdb"
    flip(data, offset % data.stat().st_size, width)
    verified = mnode(home, "verify")
    assert_one_line(verified, {0, 1, 4})
    assert_one_line(mnode(home, "book", "PUNK-ETH"), {0, 4})
    started = run_start(home)
    if verified.exit_code == 0:  # the bytes were not in use: verify and start both go on
        assert started.stderr.startswith("started"), started.stderr
    else:
        assert_refused(started, 4, "mnode verify")


def _rewrite_journal_command(home: Path) -> None:
    """Add one lot to the last placed order that still rests, in the journal only: a valid store
    whose journal no longer replays to the hashes its last commit recorded (the books and their
    hash untouched)."""
    env = lmdb.open(str(home / "data"), max_dbs=MAX_DATABASES)
    journal, orders = env.open_db(b"journal"), env.open_db(b"orders")
    with env.begin(write=True) as txn:
        resting = {tuple(msgspec.msgpack.decode(key)) for key, _ in txn.cursor(db=orders)}
        key, value = list(txn.cursor(db=journal))[-1]
        commands = msgspec.msgpack.decode(value)
        placed = next(
            c
            for c in reversed(commands)
            if c["op"] == "new"
            and (c["market"], c["owner"], c["id"]) in resting
            and c["market"] == "PUNK-ETH"  # its lot is 1
        )
        placed["qty"] = str(int(placed["qty"]) + 1)
        txn.put(key, msgspec.msgpack.encode(commands), db=journal)
    env.close()


def test_start_refuses_a_journal_that_verify_reports_divergent(copy_of):
    home = copy_of()
    _rewrite_journal_command(home)
    verified = mnode(home, "verify")
    assert verified.exit_code == 1
    assert verified.stdout.startswith("diverges: first divergence at the commit")
    assert_refused(run_start(home), 4, "start check", "first divergence", "mnode verify")


def test_start_refuses_a_meta_that_disagrees_with_the_last_commit(copy_of):
    home = copy_of()
    env = lmdb.open(str(home / "data"), max_dbs=MAX_DATABASES)
    meta = env.open_db(b"meta")
    with env.begin(write=True, db=meta) as txn:
        length = U64.unpack(txn.get(b"journal_length"))[0]
        txn.put(b"journal_length", U64.pack(length - 1))
    env.close()
    assert_refused(run_start(home), 4, "last commit record", "mnode verify")


def test_the_pristine_home_verifies_and_starts(copy_of):
    home = copy_of()
    verified = mnode(home, "verify")
    assert verified.exit_code == 0, verified.stdout
    started = run_start(home)
    assert started.stderr.startswith("started"), started.stderr


def test_a_damaged_analytics_store_is_one_line_for_stats_and_sql(copy_of):
    home = copy_of()
    synced = mnode(home, "analytics", "sync")
    assert synced.exit_code == 0, synced.stderr
    analytics = home / "analytics.duckdb"
    flip(analytics, 100, 64)  # the first header block: DuckDB's checksum fails at open
    for args in (["stats"], ["sql", "SELECT count(*) FROM events"], ["trades"]):
        result = mnode(home, *args)
        assert_one_line(result, {4})
        assert "analytics.duckdb" in result.stderr
    verified = mnode(home, "verify")
    assert verified.exit_code == 1
    assert "analytics store damaged" in verified.stdout
    analytics.write_bytes(os.urandom(200_000))  # garbage: not a DuckDB file at all
    for args in (["stats"], ["sql", "SELECT 1"]):
        assert_one_line(mnode(home, *args), {4})


def test_a_damaged_block_met_by_a_query_is_exit_4_not_a_mistake_in_the_sql(copy_of):
    home = copy_of()
    assert mnode(home, "analytics", "sync").exit_code == 0
    analytics = home / "analytics.duckdb"
    size = analytics.stat().st_size
    original = analytics.read_bytes()
    found = False
    for offset in range(3 * PAGE, size, size // 16):  # data blocks, read only by a query
        analytics.write_bytes(original)
        flip(analytics, offset, 64)
        result = mnode(home, "sql", "SELECT * FROM trades")
        assert_one_line(result, {0, 4})
        assert result.exit_code == 0 or "analytics.duckdb: " in result.stderr
        found |= "the analytics store is damaged (Corrupt database file" in result.stderr
    assert found  # some block was read by the query, not at the open


def test_verify_checks_the_analytics_store_against_the_journal(copy_of):
    home = copy_of()
    assert mnode(home, "analytics", "sync").exit_code == 0
    verified = mnode(home, "verify")
    assert verified.exit_code == 0, verified.stdout
    assert "analytics: 6383 events up to journal position 3004 of 3004" in verified.stdout
    import duckdb

    with duckdb.connect(str(home / "analytics.duckdb")) as connection:
        connection.execute("DELETE FROM events WHERE seq > 6000")
    diverged = mnode(home, "verify", "--json")
    assert diverged.exit_code == 1
    report = msgspec.json.decode(diverged.stdout)
    assert report["analytics"]["events"] == 6000 and report["analytics"]["ok"] is False
    assert any("6000 events up to seq 6000" in problem for problem in report["problems"])


def test_a_binary_config_toml_is_one_line(copy_of):
    home = copy_of()
    (home / "config.toml").write_bytes(b"\x94\x00\xff binary \xfe" * 20)
    for args in (["verify"], ["book", "PUNK-ETH"], ["stats"], ["peers", "list"]):
        result = mnode(home, *args)
        assert_one_line(result, {3})
        assert "config.toml: not a text file" in result.stderr
    assert_refused(run_start(home), 3, "not a text file")


def test_a_journal_longer_than_the_replay_bound_is_checked_at_its_end(copy_of, monkeypatch):
    """Past START_REPLAY_COMMANDS a start does not replay: it checks the meta against the last
    commit, the newest journal entries and the books' hash; `mnode verify` replays it all."""
    monkeypatch.setattr(verify, "START_REPLAY_COMMANDS", 1000)  # the sample journals 3004
    home = copy_of()
    with Store(home / "data", readonly=True) as store:
        assert verify.check_for_start(store) == []
    _rewrite_journal_command(home)
    with Store(home / "data", readonly=True) as store:
        assert verify.check_for_start(store) == []  # a changed command: only a replay sees it
        assert verify.verify_store(store).problems
    env = lmdb.open(str(home / "data"), max_dbs=MAX_DATABASES)
    journal = env.open_db(b"journal")
    with env.begin(write=True, db=journal) as txn:
        cursor = txn.cursor()
        cursor.last()
        txn.delete(cursor.key())
    env.close()
    with Store(home / "data", readonly=True) as store:
        problems = verify.check_for_start(store)
    assert problems == ["the journal ends at 1504 commands, the meta says 3004"]
