"""Joint BranchyNet training, checkpoints and resume (needs torch)."""
