"""The training objective: corrected, masked logits and the sampled-softmax loss over them."""
