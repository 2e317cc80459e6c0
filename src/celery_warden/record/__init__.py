"""The write side: signal handlers, the per-process recorder and flusher, the store's write
script, heartbeats, and the histogram and windows the store is laid out by (layer 2)."""
