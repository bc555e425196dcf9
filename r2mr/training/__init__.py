"""Training layer: TrainConfig, the trainer, its evidence and progress lines, and the runtime switches."""
