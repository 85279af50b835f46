"""The method: the network, its inputs, its losses, training, inference and evaluation."""
