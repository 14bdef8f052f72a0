"""Multi-agent reinforcement learning (Algorithm 1): configuration, networks (classical and
hybrid), MADDPG, replay, exploration, the training loop, checkpoints, policies and evaluation."""
