"""The wash detectors on the harder wash of the labelled market (issue 16, part 3).

Seed 4 is the worst of seeds 1 to 8 (`mnode integrity eval --seeds 8`): rings of 5 to 8 wallets
with honest trades between their legs, and wallets linked only through a common funder, are
missed by every detector. Their members trade mostly inside their group but not 60% of their
volume (the cover trades), or fewer than five times inside it (a ring of eight that ran two
rounds: four trades each), so wash_clusters trims them away, and no pair of them is a large
enough share of both wallets' volume to count as partners. What gives them away is that the
group comes back to flat. Marked as an expected failure until the detectors take that in;
strict, so that the day they do, this test says so.
"""

import pytest

from marketnode.node.tools.evaluation import evaluate


@pytest.mark.xfail(strict=True, reason="wash_clusters does not yet accept groups that come back "
                   "to flat with fewer or more diluted inside trades")  # fmt: skip
def test_rings_with_cover_and_funded_wallets_are_found():
    report = evaluate(4)
    assert report["precision"] >= 0.97
    assert report["recall"] >= 0.95
    assert report["recall_by_pattern"]["big_ring"] >= 0.9
    assert report["recall_by_pattern"]["funder"] >= 0.9
