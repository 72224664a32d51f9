"""rtctl for tests: a pytest plugin (``rtctl.testing.plugin``, loaded through the ``pytest11``
entry point) and the library it is made of: ``rtctl.testing.server`` (a real Soketi, or an
existing deployment), ``rtctl.testing.listener`` (subscribe, then ``wait_for``) and
``rtctl.testing.client`` (a ``pusher.Pusher`` for the test server). See docs/testing.md.

Kept empty on purpose: pytest imports this package at start-up in every project that has rtctl
installed.
"""
