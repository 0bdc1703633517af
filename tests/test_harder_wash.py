"""The wash detectors on the harder wash of the labelled market (issue 16, part 3).

Rings of 5 to 8 wallets with honest trades between their legs, and wallets linked only through a
common funder, are missed by the usual trimming. Their members trade mostly inside their group
but not 60% of their volume (the cover trades), or fewer than five times inside it (a ring of
eight that ran two rounds: four trades each), and no pair of them is a large enough share of both
wallets' volume to count as partners. What gives them away is where the lots go: the group comes
back to flat (wash_clusters' looser, flat-only rule), a ring's lots exactly so whatever its cover,
and a funder's wallets, most of them in no pair that traded twice, trade with the group only.
"""

import pytest

from marketnode.node.tools.evaluation import evaluate


@pytest.mark.slow
def test_rings_with_cover_and_funded_wallets_are_found():
    report = evaluate(4)
    assert report["precision"] >= 0.97
    assert report["recall"] >= 0.95
    assert report["recall_by_pattern"]["big_ring"] >= 0.9
    assert report["recall_by_pattern"]["funder"] >= 0.9
