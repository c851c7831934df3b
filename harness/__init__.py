"""Claim verification harness: RL claims for LLM reasoning, checked over model-task pairs of measured alignment."""
