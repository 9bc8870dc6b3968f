"""The live console the runtime serves at ``/console``: one-time links, sessions, the page and its JSON API."""
