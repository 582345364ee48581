"""Framework-free building blocks: networks, mixers, action selection, targets, replay."""
