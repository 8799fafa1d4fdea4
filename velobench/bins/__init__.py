"""Native engines: where they are (locate), how llama.cpp is built (build), vLLM's environment."""
