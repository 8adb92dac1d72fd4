"""Training: the trainer and its step, the loop's state, the schedule, guards and callbacks."""
