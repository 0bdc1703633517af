"""The running node: the one matching thread and everything on its path.

`node` is the loop (poll, then per batch: drain, decode, admit, apply, commit, answer, report,
publish; housekeeping between batches). Around it: `sockets` (binding, CURVE and the ZAP key
check), `connections` (the peer behind each message, where its reports go), `gateway`
(admission: peer stamping, limits, rate, rejects before the engine), `requests` (ping,
snapshot, open_orders, markets, whoami), `answers` (answers and execution reports),
`marketdata` (topics and their seqs), `admin` (the admin socket), `view` (the narrow interface
requests and admin read the node through), `analytics_link` (the analytics child process and
its typed link) and `instruments` (metrics sampler, scaling, Prometheus). May import: `core`,
`store`, `protocol`, `home`, `ops`, `analytics` (to start and talk to its process, never its
DuckDB), and `marketnode.plugins`.
"""
