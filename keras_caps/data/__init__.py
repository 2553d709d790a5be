"""Data: the bounds-checked IDX reader, TFDS loading, tf.data pipelines and image files."""
