"""Plugins: the hooks a plugin may implement (`hookspecs`), the host that loads and calls them
(`host`, `settings`), and the built-in integrity detectors and scaling policies, registered
through the same entry point groups as third-party ones (`marketnode.integrity`,
`marketnode.scaling`; see docs/plugins.md).

May import `marketnode.node.core` (the configuration error); a detector's or a policy's heavy
libraries (scikit-learn, numpy) are imported where they are used, not when the module loads.
"""
