"""tbscope inside the frameworks people train with: PyTorch Lightning (``integrations.lightning``)."""
