"""Algorithms as validated specs: the frozen, checked arguments of every strategy
(:mod:`thrifty.specs.strategies`), scheduler (:mod:`thrifty.specs.schedulers`) and completion
criterion (:mod:`thrifty.criteria`, whose classes are their own specs), the rules they are checked
with (:mod:`thrifty.specs.rules`) and what each fits (:meth:`thrifty.specs.base.Spec.misfit`).
The registry that maps names to specs and classes is :mod:`thrifty._registry`.
"""
