"""Run directories: their layout, the training-state checkpoint, resuming, atomic writes."""
