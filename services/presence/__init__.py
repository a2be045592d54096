"""Presence service: who is online and who is in each room, with no ghosts."""
