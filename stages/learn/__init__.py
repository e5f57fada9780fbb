"""The coupling net: features, model, checkpoint, training sources, metrics, gates, the training loop, scoring."""
