"""What `scripts/gpu_check.py` runs on a real card: every route loaded and measured
(`routes`), cold start against sleep and wake (`standby`), and whether another llmhost
runs here (`running`)."""
