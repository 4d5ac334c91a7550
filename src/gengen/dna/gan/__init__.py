"""The Killoran DNA WGAN-GP: networks, training (resumable through gengen.training_state), the GANModel object, sampling, latent interpolation, novelty and evaluation."""
