"""A listwise test plugin: knowledge distillation towards a sharpened teacher (temperature 0.5)."""

from geobench.objectives import Geometry, GroupBatch, listwise_cross_entropy, objective, softmax_target
from geobench.objectives.advantages import StageTargets


@objective(
    "kd-sharp",
    geometry=Geometry("teacher", "Softmax Fisher", "Zero Anchor (l)", "Sharpened teacher"),
    feedback="listwise",
    paper="a test plugin: KD with the teacher's softmax at temperature 0.5",
)
def kd_sharp(batch: GroupBatch, *, temperature: float = 0.5):
    u = batch.seq_logp("policy")
    q = softmax_target(batch.rewards, temperature)
    return batch.context_mean(listwise_cross_entropy(u, StageTargets.single(q))), {}
