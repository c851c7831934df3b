"""GRPO through TRL: reward, data and sample-polarity variants."""
