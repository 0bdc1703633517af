"""Operations: the hot loop's counters and histograms, the sampler thread (psutil), minute
rollups, the Prometheus endpoint and the scaling advice from policy plugins.

The loop only bumps integers here; everything else runs in other threads. May import: `core`,
`home`, `protocol` and `marketnode.plugins`.
"""
