"""TensorBoard tabs beside the Profile tab: each plugin's entry imports nothing heavy."""
