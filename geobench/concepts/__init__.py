"""The papers' conceptual figures as computations on the objective library.

ADPO Fig. 1 (:mod:`adpo_geometry`), OPO Fig. 1 (:mod:`opo_response`) and OPO Fig. 2
(:mod:`opo_algorithm`) draw no run's results: each states something the registered
objectives can compute, so each module computes it (deterministic, seconds on one thread)
and returns named tables that ``geobench figures`` writes beside the figure it draws.
"""
