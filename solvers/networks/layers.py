"""Small serializable Keras layers used by base7 (registered, so `.keras` files reload without Lambda)."""
import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="autoq")
class DepthToSpace(keras.layers.Layer):
    """Rearranges (h, w, c·s²) into (h·s, w·s, c): the sub-pixel shuffle of ESPCN-style upscalers."""

    def __init__(self, block_size, **kwargs):
        super().__init__(**kwargs)
        self.block_size = int(block_size)

    def call(self, inputs):
        return tf.nn.depth_to_space(inputs, self.block_size)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        s = self.block_size
        return (n, None if h is None else h * s, None if w is None else w * s, c // (s * s))

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


@keras.saving.register_keras_serializable(package="autoq")
class ClipPixels(keras.layers.Layer):
    """Clips to the valid pixel range [low, high] (the network works on [0, 255] pixels)."""

    def __init__(self, low=0.0, high=255.0, **kwargs):
        super().__init__(**kwargs)
        self.low, self.high = float(low), float(high)

    def call(self, inputs):
        return keras.ops.clip(inputs, self.low, self.high)

    def get_config(self):
        return {**super().get_config(), "low": self.low, "high": self.high}
