"""The digit classifier: network, MNIST data, preprocessing, checkpoints, training and evaluation."""
