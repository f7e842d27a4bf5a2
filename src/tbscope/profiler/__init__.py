"""The profiler: one-line ``torch.profiler`` capture, and trace analysis that needs no torch."""
