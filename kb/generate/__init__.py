"""Generated answers: an LLM writes the wording, we prove every claim with a verified verbatim quote."""
