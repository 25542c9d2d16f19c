"""The dashboard at ``/ui``: Jinja2 templates, static assets and the browser session.

Pages are served by :mod:`interlink.http.routers.ui`. The signed-in API key lives only in an
HttpOnly, SameSite=Strict cookie scoped to ``/ui``; every form POST carries a CSRF token.
"""
