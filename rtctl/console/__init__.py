"""`rtctl console`: a local, token-guarded web page to watch and poke a Pusher-protocol app.

``rtctl.console.app.create_app(settings, token)`` builds the ASGI app (Starlette); the page is
plain HTML, CSS and JavaScript shipped in ``static/`` (no build step, nothing from a CDN).
"""
