"""velobench: does speculative decoding make my model faster, by how much, and with which settings?"""

__version__ = "0.1.0"
