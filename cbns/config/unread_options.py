"""Options that the chosen sampler and towers do not read, from each registered component's
``options`` (the config options a sampler or tower reads, docs/extending.md).

An option that some sampler or tower reads, but none of those a run chose, does nothing in that
run: ``user_features`` with the ``id`` user tower, ``memory_size`` with the ``inbatch`` sampler.
A tower registered on both sides lists the options of both (``user_features``,
``item_features``); on one side it reads only those not named after the other side.
The same holds for an option that only some choices of a plain option read
(:data:`CHOICE_READS`): ``valid_fraction`` with ``split loo``, whose validation split is each
user's second-to-last item. ``cbns train`` refuses such an option given as a flag and warns
about one a config file set (a shared config may well set ``num_negatives`` for runs of several
samplers).
"""
from __future__ import annotations

from cbns.errors import Opt
from cbns.registry import ITEM_TOWERS, SAMPLERS, USER_TOWERS

SIDES = {"user": USER_TOWERS, "item": ITEM_TOWERS}
#: ``{option: {choice: the options that choice reads}}`` for plain options whose choices read others.
CHOICE_READS = {"split": {"random": ("valid_fraction",), "loo": (), "temporal": ("valid_fraction",)}}


def side_options(registry, name: str, side: str) -> set[str]:
    """The options tower ``name`` reads on ``side``: its ``options`` but those of the other side."""
    other = "item_" if side == "user" else "user_"
    return {option for option in registry.options(name) if not option.startswith(other)}


def readers_of() -> dict[str, list[Opt]]:
    """``{option: [Opt("sampler", "cbns"), Opt("user_tower", "pooled"), ...]}`` over every registered
    component."""
    found: dict[str, list[Opt]] = {}
    for name in SAMPLERS.names():
        for option in SAMPLERS.options(name):
            found.setdefault(option, []).append(Opt("sampler", name))
    for side, registry in SIDES.items():
        for name in registry.names():
            for option in sorted(side_options(registry, name, side)):
                found.setdefault(option, []).append(Opt(f"{side}_tower", name))
    for kind, choices in CHOICE_READS.items():
        for name, options in choices.items():
            for option in options:
                found.setdefault(option, []).append(Opt(kind, name))
    return found


def unread_options(config, candidates=None) -> dict[str, tuple[Opt, list[Opt]]]:
    """``{option: (what the run chose, [the components that would read it])}`` for the options among
    ``candidates`` (default: those that differ from their default) that a component reads but
    none of the chosen ones."""
    from cbns.config.train_config import TrainConfig

    if candidates is None:
        defaults = TrainConfig()
        candidates = [name for name in TrainConfig.options() if config[name] != defaults[name]]
    chosen = set(SAMPLERS.options(config.sampler.name))
    for side, registry in SIDES.items():
        chosen |= side_options(registry, config[f"{side}_tower"], side)
    for kind, choices in CHOICE_READS.items():
        chosen |= set(choices.get(config[kind], ()))
    found = {}
    for option, readers in readers_of().items():
        if option in candidates and option not in chosen:
            kind = readers[0].name  # sampler, user_tower, item_tower or a key of CHOICE_READS
            found[option] = (Opt(kind, config[kind]), [r for r in readers if r.name == kind] or readers)
    return found
