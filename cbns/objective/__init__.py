"""The training objective: negative sources combined into one corrected, masked sampled softmax.

``sampled_objective`` is the one objective (gather, log q, the sources' candidates, the loss, the
post-step writes, the step counter); ``cross_batch_loss`` is it with the in-batch and bank sources
(CBNS); ``full_softmax_loss`` is the exact softmax; ``samplers`` registers what each ``--sampler``
name builds (``sampler_spec``); ``loss``, ``logits`` and ``fused_softmax`` compute the softmax.
"""
