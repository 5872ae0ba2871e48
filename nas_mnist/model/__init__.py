"""Spec -> Keras model -> trained model: the builder, the training loop and the devices."""
