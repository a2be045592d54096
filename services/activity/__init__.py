"""The activity service: every interaction recorded, analytics that answer real questions.

See docs/architecture.md ("Activity") for the design; `goldwire activity` runs it.
"""
