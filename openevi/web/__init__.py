"""The web playground: a built single-page app (source in `web/`) served at `/playground`."""
