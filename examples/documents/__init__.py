"""The documents example: a legal team's document room, built on Goldwire.

A small FastAPI app on its own port, separate from Goldwire the way a real
backend is: it owns the documents and their comments, mints the users' tokens
with the gateway's JWT_SECRET, and publishes every saved change through
`goldwire.client`'s HTTP publisher. The browser pages import the SDK from the
gateway (`<gateway>/sdk/goldwire.js`, another origin) for presence, live edits,
notifications and preferences.

    python -m examples.documents --port 8080   # needs JWT_SECRET, API_KEYS, GOLDWIRE_HTTP
    make demo                                  # Goldwire and this app together

Modules: `store` (documents and comments, in memory or in a JSON file),
`live` (publishing that survives a gateway restart), `app` (the routes),
`demo` (what `make demo` runs).
"""
