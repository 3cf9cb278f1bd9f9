"""The web console: the browser's view over the same database and library calls as the CLI.

``schema`` (its own tables, applied by ``cardperso db upgrade``), ``users`` (roles, Argon2
passwords, rate-limited login), ``sessions`` (cookies, CSRF), ``audit`` (who did what when),
``floor`` (the factory floor's read model) and ``app`` (the Starlette application).
"""
