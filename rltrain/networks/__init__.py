"""Networks: MLP and Nature-CNN trunks, Q / dueling / actor-critic heads, chosen by `build_*`."""

from rltrain.networks.builders import (
    ActorCritic,
    QNetwork,
    build_actor_critic,
    build_q_network,
    build_trunk,
)

__all__ = ["ActorCritic", "QNetwork", "build_actor_critic", "build_q_network", "build_trunk"]
