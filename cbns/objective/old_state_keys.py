"""Reading objective states saved when a sampler module held the drawing sources' state.

Checkpoints (``train_state.ckpt``) and model files (``model.pt``) store the objective's
``state_dict()``. For the drawing samplers (uniform, popularity, mns) that state was then kept
under ``sampler.``: ``sampler.log_q`` (the unigram table), ``sampler.step`` (the step counter),
``sampler.uniform`` / ``sampler.probs`` (the drawing distribution), ``sampler._extra_state`` (the
generator) and, with the streaming estimate, ``sampler.frequency.*``. The CBNS loss's keys
(``step``, ``log_q``, ``bank.*``, ``frequency.*``) are today's, unchanged.
"""
from __future__ import annotations

OLD = "sampler."


def rename_sampler_keys(objective, state_dict: dict, prefix: str) -> None:
    """Rename, in place, the ``<prefix>sampler.*`` keys of ``state_dict`` to where ``objective``
    (a :class:`cbns.objective.sampled_objective.SampledSoftmaxObjective`) keeps that state: the
    step counter and the frequency estimate on the objective, the unigram table on the objective
    (dropped under the streaming estimate, where it held per-step copies of the estimate that
    nothing reads), the rest on the source whose state holds a key of that name."""
    old = [k for k in state_dict if k.startswith(prefix + OLD)]
    if not old:
        return
    owners = {name: set(child.state_dict()) for name, child in objective.named_children()}
    for key in old:
        rest = key[len(prefix + OLD):]
        value = state_dict.pop(key)
        if rest == "log_q" and objective.frequency is not None:
            continue
        if rest in ("log_q", "step") or rest.startswith("frequency."):
            state_dict[prefix + rest] = value
            continue
        owner = next((name for name, keys in owners.items() if rest in keys), None)
        state_dict[prefix + (f"{owner}.{rest}" if owner else OLD + rest)] = value
