"""The plugin host: one loaded host per entry point group, the isolated call-each, plugins found
through real entry points, the matching process kept free of scikit-learn, `mnode plugins`."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pluggy
import pytest
from typer.testing import CliRunner

from marketnode.cli.plugins import app
from marketnode.node.core.markets import ConfigError
from marketnode.node.home.layout import Home
from marketnode.node.tools.e2e import prepare_home, start_node_process, stop_node_process
from marketnode.plugins.hookspecs import hookimpl
from marketnode.plugins.host import (
    INTEGRITY,
    SCALING,
    PluginHost,
    forget_plugin_hosts,
    plugin_host,
)
from marketnode.plugins.settings import declared_tables

runner = CliRunner()

DETECTORS = {
    "self_trades", "round_trips", "trade_cycles", "churn", "wash_clusters", "market_statistics",
    "anomalous_wallets",
}  # fmt: skip
POLICIES = {"reactive", "predictive", "capacity", "sharding"}


@contextmanager
def fresh_plugins() -> Iterator[None]:
    """Hosts loaded anew inside the block and forgotten after it: a plugin a test installs or
    registers is found, and is not left to the tests that follow."""
    forget_plugin_hosts()
    try:
        yield
    finally:
        forget_plugin_hosts()


def install_distribution(
    site: Path, name: str, version: str, entry_points: str, modules: dict[str, str]
) -> None:
    """A distribution as pip leaves it: its `.dist-info` (METADATA, entry_points.txt) and its
    modules in `site`, a folder the caller puts on sys.path."""
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(entry_points)
    for module, source in modules.items():
        path = site / f"{module.replace('.', '/')}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)


KUBE_POLICY = '''
from marketnode.plugins.hookspecs import declare_settings, hookimpl
from marketnode.plugins.recommendation import Recommendation

scaling_settings = declare_settings("scaling_settings", "kube", {"max_pods": 10})


@hookimpl
def recommend_scaling(history, settings):
    return [Recommendation(policy="kube", action="warn", resource="pods", current=None,
                           desired=None, metric="pods", ratio=None, confidence=1.0,
                           reason=f"at most {settings['kube']['max_pods']} pods")]
'''


@pytest.fixture
def kube_policy(tmp_path, monkeypatch) -> Iterator[None]:
    """A third-party scaling policy, installed as distribution `kubepolicy` 2.3."""
    site = tmp_path / "site"
    install_distribution(
        site, "kubepolicy", "2.3", "[marketnode.scaling]\nkube = kube_policy\n",
        {"kube_policy": KUBE_POLICY},
    )  # fmt: skip
    monkeypatch.syspath_prepend(str(site))
    with fresh_plugins():
        yield
    sys.modules.pop("kube_policy", None)


def test_each_group_loads_its_own_built_ins_through_its_entry_points():
    integrity, scaling = PluginHost.load(INTEGRITY), PluginHost.load(SCALING)
    assert {info.name for info in integrity.describe()} == DETECTORS
    assert {info.name for info in scaling.describe()} == POLICIES
    for info in integrity.describe() + scaling.describe():
        assert info.built_in and info.distribution == "marketnode"
        assert info.module == f"marketnode.plugins.{info.name}"
    predictive = next(info for info in scaling.describe() if info.name == "predictive")
    assert predictive.hooks == ["forecast_load", "recommend_scaling", "scaling_settings"]


def test_a_host_is_loaded_once_per_process_until_forgotten():
    with fresh_plugins():
        first = plugin_host(SCALING)
        assert plugin_host(SCALING) is first
        assert plugin_host(INTEGRITY) is not first
        forget_plugin_hosts()
        assert plugin_host(SCALING) is not first


class Answers:
    """A policy answering `recommend_scaling` and `forecast_load` with `value`, counting calls."""

    def __init__(self, value: object) -> None:
        self.value = value
        self.calls = 0

    @hookimpl
    def recommend_scaling(self, history):
        self.calls += 1
        return self.value

    @hookimpl
    def forecast_load(self, now):
        self.calls += 1
        return self.value


class Raises:
    @hookimpl
    def recommend_scaling(self, history, settings, now):
        raise ZeroDivisionError("a bug in a third-party policy\nand its second line")

    @hookimpl
    def forecast_load(self, history):
        raise ZeroDivisionError("a bug in a third-party forecast")


def test_a_failing_plugin_is_logged_in_one_line_and_the_others_still_answer(caplog):
    host = PluginHost(SCALING)
    first, later = Answers(["first"]), Answers(["later"])
    host.register(first, name="first")
    host.register(Raises(), name="broken")
    host.register(later, name="later")
    with caplog.at_level(logging.ERROR):
        answers = host.call_each("recommend_scaling", history=[], settings={}, now=0.0)
    assert answers == [["later"], ["first"]]  # pluggy's order: the last registered first
    assert caplog.messages == [
        "scaling plugin broken failed in recommend_scaling: ZeroDivisionError: a bug in a "
        "third-party policy"
    ]


def test_a_firstresult_hook_gives_the_first_answer_and_calls_no_further():
    host = PluginHost(SCALING)
    unasked, answering, silent = Answers({"at": "b"}), Answers({"at": "a"}), Answers(None)
    for name, plugin in (("unasked", unasked), ("answering", answering), ("silent", silent)):
        host.register(plugin, name=name)
    host.register(Raises(), name="broken")
    found = host.call_each("forecast_load", history=[], settings={}, now=0.0)
    assert found == {"at": "a"}
    assert (silent.calls, answering.calls, unasked.calls) == (1, 1, 0)
    assert PluginHost(SCALING).call_each("forecast_load", history=[], settings={}, now=0.0) is None


def test_an_error_let_through_is_raised_not_logged(caplog):
    host = PluginHost(SCALING)
    host.register(Raises(), name="broken")
    with pytest.raises(ZeroDivisionError):
        host.call_each(
            "recommend_scaling", let_through=(ArithmeticError,), history=[], settings={}, now=0
        )
    assert not caplog.messages


def test_hook_wrappers_are_refused():
    class Wrapper:
        @hookimpl(wrapper=True)
        def recommend_scaling(self):
            return (yield)

    with pytest.raises(pluggy.PluginValidationError, match="hook wrappers are not supported"):
        PluginHost(SCALING).register(Wrapper(), name="wrapper")


def test_two_plugins_declaring_one_table_is_a_configuration_error():
    class Twin:
        @hookimpl
        def scaling_settings(self):
            return {"reactive": {"target": 1.0}}

    host = PluginHost.load(SCALING)
    host.register(Twin(), name="twin")
    with pytest.raises(ConfigError, match="plugins twin and reactive both declare the scaling "):
        declared_tables(host)


def test_a_third_party_policy_is_found_through_its_entry_point_and_advises(kube_policy):
    from marketnode.node.home.config import ScalingConfig
    from marketnode.node.ops.scaling import Scaler, policy_settings
    from marketnode.node.tools.scaling_eval import START, sample

    config = ScalingConfig(policies={"kube": {"max_pods": 4}})
    advice = Scaler(policy_settings(config), 300).update([sample(START, 0.3, 0.0)], START)
    kube = [r for r in advice if r.policy == "kube"]
    assert [(r.action, r.reason) for r in kube] == [("warn", "at most 4 pods")]
    assert "kube" not in dict(plugin_host(INTEGRITY).list_name_plugin())


def test_a_plugin_that_cannot_be_imported_is_named_in_one_line(tmp_path, monkeypatch):
    site = tmp_path / "site"
    install_distribution(
        site, "brokenpolicy", "0.1", "[marketnode.scaling]\nbroken = broken_policy\n",
        {"broken_policy": "import a_module_nobody_installed\n"},
    )  # fmt: skip
    monkeypatch.syspath_prepend(str(site))
    with fresh_plugins():
        with pytest.raises(ConfigError) as raised:
            plugin_host(SCALING)
        result = runner.invoke(app, [])
    assert str(raised.value) == (
        "plugin broken (brokenpolicy, entry point group marketnode.scaling) cannot be loaded: "
        "ModuleNotFoundError: No module named 'a_module_nobody_installed'"
    )
    assert result.exit_code == 3 and result.stdout == ""
    assert result.stderr == f"mnode: {raised.value}\n"


LOADS_THE_SCALER_AS_THE_NODE_DOES = """
import sys
from marketnode.node.home.config import ScalingConfig
from marketnode.node.ops.scaling import Scaler, policy_settings
from marketnode.node.tools.scaling_eval import START, sample

scaler = Scaler(policy_settings(ScalingConfig()), 300)
scaler.update([sample(START + n, 0.95, 0.0) for n in range(40)], START + 39)
print(sorted(name for name in ("sklearn", "numpy", "duckdb") if name in sys.modules))
"""


def test_the_scaling_group_loads_and_advises_without_numerical_libraries():
    """What the node's process does with the plugins: load the scaling group, check the
    policies' settings, advise (too little history for a forecast, as at start)."""
    found = subprocess.run(
        [sys.executable, "-c", LOADS_THE_SCALER_AS_THE_NODE_DOES],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    assert found.stdout.strip() == "[]", found.stderr


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/PID/maps")
def test_a_started_node_process_has_not_imported_scikit_learn(tmp_path):
    """`mnode start` with analytics on: the process that runs the matching thread loads the
    scaling policies and checks the detectors' tables, and maps no scikit-learn library
    (every import of sklearn loads its compiled modules); its analytics process may."""
    home, _ = prepare_home(tmp_path / "home", analytics=True)
    process = start_node_process(home)
    try:
        mapped = Path(f"/proc/{process.pid}/maps").read_text()
    finally:
        stop_node_process(process)
    assert "/site-packages/" in mapped  # the process's own extension modules are listed
    assert "/sklearn/" not in mapped


def plugins(*args: str):
    return runner.invoke(app, list(args))


def test_plugins_lists_each_group_with_origin_hooks_and_defaults():
    result = plugins("--json")
    assert result.exit_code == 0, result.stderr
    records = {(r["group"], r["name"]): r for r in json.loads(result.stdout)}
    assert set(records) == {("integrity", n) for n in DETECTORS} | {
        ("scaling", n) for n in POLICIES
    } | {("liquidity", n) for n in ("amm", "market_maker")}
    churn = records["integrity", "churn"]
    assert churn["built_in"] and churn["module"] == "marketnode.plugins.churn"
    assert churn["hooks"] == ["detect_integrity", "integrity_settings"]
    assert churn["settings"]["churn"]["min_trades"] == 10
    assert records["integrity", "self_trades"]["settings"] == {"self_trades": {}}
    text = plugins().stdout.splitlines()
    assert "scaling    reactive           built-in (marketnode.plugins.reactive)" in text
    assert "    hooks     recommend_scaling, scaling_settings" in text


def test_plugins_shows_the_settings_in_effect_for_a_home_and_a_third_party_plugin(
    tmp_path, kube_policy
):
    home = Home.create(tmp_path / "home")
    text = home.config_path.read_text()
    churn = text.index("[integrity.churn]")
    home.config_path.write_text(
        text[:churn] + text[churn:].replace("min_trades = 10", "min_trades = 12", 1)
        + "\n[scaling.kube]\nmax_pods = 4\n"
    )
    result = plugins("--home", str(home.path), "--json")
    assert result.exit_code == 0, result.stderr
    records = {r["name"]: r for r in json.loads(result.stdout)}
    assert records["churn"]["settings"]["churn"]["min_trades"] == 12
    assert records["churn"]["settings"]["churn"]["window_s"] == 86400  # its default still
    kube = records["kube"]
    assert (kube["group"], kube["built_in"], kube["distribution"], kube["version"]) == (
        "scaling", False, "kubepolicy", "2.3",
    )  # fmt: skip
    assert kube["hooks"] == ["recommend_scaling", "scaling_settings"]
    assert kube["settings"] == {"kube": {"max_pods": 4}}
    text = plugins("--home", str(home.path)).stdout.splitlines()
    assert "scaling    kube               kubepolicy 2.3 (kube_policy)" in text
    assert "    [scaling.kube] max_pods = 4" in text


def test_plugins_refuses_a_home_mistake_in_one_line(tmp_path):
    missing = plugins("--home", str(tmp_path / "nowhere"))
    assert missing.exit_code == 3 and missing.stdout == ""
    assert len(missing.stderr.splitlines()) == 1 and "not a node home" in missing.stderr
    home = Home.create(tmp_path / "home")
    home.config_path.write_text(home.config_path.read_text() + "\n[scaling.kube]\npods = 1\n")
    wrong = plugins("--home", str(home.path), "--json")
    assert wrong.exit_code == 3 and wrong.stdout == ""
    assert wrong.stderr.startswith("mnode: ") and len(wrong.stderr.splitlines()) == 1
    assert "[scaling.kube]: no installed scaling policy has this name" in wrong.stderr


DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def test_the_documented_plugins_install_through_the_documented_entry_points(
    tmp_path, monkeypatch
):
    """docs/plugins.md's detector, policy and pyproject.toml, installed as the doc says: found,
    listed, configured and called."""
    import duckdb

    from marketnode.node.home.config import ScalingConfig
    from marketnode.node.ops.scaling import Scaler, policy_settings
    from marketnode.node.tools.scaling_eval import START, sample
    from marketnode.plugins.settings import settings_in_effect

    text = DOC.read_text()
    detector, policy, _timing = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    project = tomllib.loads(re.search(r"```toml\n(.*?)```", text, re.DOTALL)[1])["project"]
    groups = project["entry-points"]
    sources = {"marketnode.integrity": detector, "marketnode.scaling": policy}
    install_distribution(
        tmp_path / "site", project["name"], project["version"],
        "".join(f"[{group}]\n" + "".join(f"{name} = {module}\n" for name, module in listed.items())
                for group, listed in groups.items()),
        {module: sources[group] for group, listed in groups.items() for module in listed.values()},
    )  # fmt: skip
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with fresh_plugins():
        listed = json.loads(plugins("--json").stdout)
        connection = duckdb.connect()
        connection.execute("CREATE TABLE trades (market VARCHAR, seq BIGINT, qty DECIMAL(38, 12))")
        connection.execute("INSERT INTO trades VALUES ('PUNK-ETH', 1, 5), ('PUNK-ETH', 2, 2000)")
        alerts = plugin_host(INTEGRITY).call_each(
            "detect_integrity", connection=connection, settings=settings_in_effect(INTEGRITY, {})
        )
        history = [sample(START + n, 0.95, 0.0) for n in range(20)]
        config = ScalingConfig(policies={"kube": {"max_pods": 4}})
        advice = Scaler(policy_settings(config), 300).update(history, history[-1]["time"])
    for module in ("marketnode_kube.detector", "marketnode_kube.policy", "marketnode_kube"):
        sys.modules.pop(module, None)
    found = {(r["group"], r["name"]): r for r in listed if not r["built_in"]}
    assert set(found) == {("integrity", "big_trades"), ("scaling", "kube")}
    assert {(r["distribution"], r["version"]) for r in found.values()} == {
        ("marketnode-kube", "0.2.0")
    }
    assert [[alert.trades for alert in answer] for answer in alerts] == [[[2]]]
    kube = [r for r in advice if r.policy == "kube"]
    assert [(r.action, r.resource, r.desired) for r in kube] == [("scale_up", "pods", 2)]


def test_the_documented_settlement_policy_answers_before_the_built_in_one():
    """docs/plugins.md's settlement timing example, registered beside the built-in policy:
    it holds a batch through a spike, and leaves the rest to `fee_forecast`."""
    import types

    from marketnode.plugins.settlement_timing import send_now, timing_manager

    example = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)[2]
    module = types.ModuleType("spike_wait")
    exec(compile(example, "docs/plugins.md", "exec"), module.__dict__)
    manager = timing_manager()
    manager.register(module, name="spike_wait")
    gwei = 10**9
    spike = [20 * gwei] * 20 + [100 * gwei]
    climbing = [int(10 * gwei * 1.05**block) for block in range(21)]
    # 10 s before the deadline the built-in sends whatever the fee; the example, asked first,
    # still waits (the relayer sends at the deadline itself)
    assert send_now(timing_manager(), spike, 10) is True
    assert send_now(manager, spike, 10) is False, "the example answered before the built-in"
    assert send_now(manager, climbing, 600) is True, "no opinion: the built-in sends on a climb"

