"""Sessions service: sessions that survive refreshes, synced preferences."""
