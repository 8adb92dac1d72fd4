"""PNG figures (matplotlib, headless Agg backend): drift curves and the study's sweeps."""
