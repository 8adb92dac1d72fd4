"""Evaluation: ranking metrics, the exact top-K shared with serving, full ranking (single process
and sharded over ranks)."""
