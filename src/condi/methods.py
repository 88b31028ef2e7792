"""The student methods (docs/method.md, section 3), each registered once, by name.

A method is a student objective (its loss: :func:`condi.training.student.make_step`, from
:mod:`condi.losses`) together with the per-clip score that ranks a video's clips at test time.
Everything else reads this registry: the params schema's allowed ``methods`` (injected by
:func:`condi.config.load_schema`), the ``--method`` help of the stage commands, the students
the pipeline times for Table IV (``condi.pipeline.TIMING_METHODS``), the ranking score
(:func:`condi.scores.ranking_score`) of training's validation, the evaluation grid and the
timing, and the tables' labels and row order. :data:`METHODS` lists the names in registration
order.

Kept free of heavy imports: Snakemake reads it while it parses the workflow.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    """One student method."""

    name: str
    # the per-clip score (a key of condi.scores.student_clip_scores) that ranks clips at test
    # time, higher first: z_tilde (sigmoid of the confidence logit), neg_entropy, max_prob
    ranking: str
    # whether the objective trains the one-logit confidence head (else its z~ is untrained)
    trains_confidence: bool
    # whether Table IV times it (the pipeline's timing stage gathers these students)
    timed: bool
    # the name tables and figures print
    label: str
    description: str


METHOD_REGISTRY: dict[str, Method] = {}


def register(
    name: str, *, ranking: str, trains_confidence: bool, timed: bool, label: str, description: str
) -> Method:
    """Add the method ``name`` to :data:`METHOD_REGISTRY` (a name is registered once)."""
    if name in METHOD_REGISTRY:
        raise ValueError(f"method {name!r} is already registered")
    method = Method(name, ranking, trains_confidence, timed, label, description)
    METHOD_REGISTRY[name] = method
    return method


register(
    "condi_sr",
    ranking="z_tilde",
    trains_confidence=True,
    timed=True,
    label="ConDi-SR",
    description="ConDi: KD on the teacher's distribution mixed with uniform by z~, and the "
    "confidence head on Eq. 1's z (Eq. 5-6); ranks by z~",
)
register(
    "bce_conf",
    ranking="z_tilde",
    trains_confidence=True,
    timed=True,
    label="BCE-Conf",
    description="cross-entropy on y plus the mu-weighted BCE of the confidence head on Eq. 1's z, "
    "no distillation; ranks by z~",
)
register(
    "st_ent",
    ranking="neg_entropy",
    trains_confidence=False,
    timed=True,
    label="ST-Ent",
    description="Hinton's soft-label KD plus cross-entropy on y; ranks by the lowest predictive "
    "entropy",
)
register(
    "st_conf",
    ranking="z_tilde",
    trains_confidence=True,
    timed=False,
    label="ST-Conf",
    description="DeVries and Taylor's learned confidence c with hints and an adaptive budget; "
    "ranks by c",
)
register(
    "maxprob",
    ranking="max_prob",
    trains_confidence=False,
    timed=False,
    label="MaxProb",
    description="plain cross-entropy on y (SCSampler-style); ranks by the max-softmax",
)

METHODS: tuple[str, ...] = tuple(METHOD_REGISTRY)
# the students Table IV times, in registry order
TIMED_METHODS: tuple[str, ...] = tuple(m.name for m in METHOD_REGISTRY.values() if m.timed)


def get_method(name: str) -> Method:
    """The registered method ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return METHOD_REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; expected one of {METHODS}") from None
