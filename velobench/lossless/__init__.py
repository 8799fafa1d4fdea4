"""`velobench lossless`: does a speculative setup keep the target's output distribution? (sampling, the test, rendering)"""
