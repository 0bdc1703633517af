"""The strongly connected components under the trade-cycle detector."""

from marketnode.plugins.trade_cycles import strongly_connected


def test_components_of_a_small_graph():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": {"d"}, "f": {"a"}}
    assert sorted(strongly_connected(edges)) == [["a", "b", "c"], ["d", "e"], ["f"]]


def test_a_long_chain_needs_no_recursion():
    chain = {str(n): {str(n + 1)} for n in range(50_000)}
    chain["50000"] = {"0"}
    (component,) = strongly_connected(chain)
    assert len(component) == 50_001
