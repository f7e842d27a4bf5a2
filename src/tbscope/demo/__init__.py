"""The embedded demo: a generated shapes data set, a small CNN and a training script that logs everything."""
