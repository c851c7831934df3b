"""The characters of every bare-format question and answer of the generated families."""

# digits and operators (arithmetic, operator), '=' ending every question, T/F (truth-table answers),
# variables and connectives (truth-table questions). The order fixes the organism tokenizer's ids.
ORGANISM_ALPHABET = "0123456789+-*#=TFabcd~&|()"
