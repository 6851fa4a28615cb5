"""Using a trained model: decoding, generation, reconstruction, interpolation, features."""
