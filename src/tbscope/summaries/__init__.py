"""One module per kind of data, each turning captured values into TensorBoard ``Summary`` protos.

Modules here run on the pipeline thread, never on the training loop's, and import no torch: values
arrive as Python numbers and NumPy arrays.
"""
