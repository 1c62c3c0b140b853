"""thrifty's numerical core, shared by every model (GP strategies, the cost forecast).

One job per module; numpy and scipy load only when a module is imported:

* :mod:`~thrifty.numerics.linalg`: Cholesky factors (LAPACK directly), solves, inverses and the
  two rules for a matrix that is not numerically positive definite.
* :mod:`~thrifty.numerics.kernels`: Matérn-3/2 and -5/2 kernels of squared scaled distances, and
  per-dimension squared distances.
* :mod:`~thrifty.numerics.features`: kernel inputs built from a space's encoded points
  (:class:`thrifty.space.Encoder`): one-hot groups with inactive indicators (the GP strategies) or
  values plus inactive indicators with a Hamming mask (the cost forecast).
* :mod:`~thrifty.numerics.fitting`: hyperparameter search: the best local optimum from several
  starts, and univariate slice sampling.
* :mod:`~thrifty.numerics.posterior`: the Gaussian log evidence of a kernel matrix (value and the
  matrix its gradient needs) and the posterior weights (``K^-1 y`` and ``K^-1``).
* :mod:`~thrifty.numerics.gp`: the ARD Matérn-5/2 GP of the strategies (MAP hyperparameters,
  posterior mean and variance, their gradients).
* :mod:`~thrifty.numerics.acquisition`: log expected improvement (stable), log probability of
  feasibility, their gradients, and the gradient refinement of candidates.

The encoding itself (parameters to the unit cube and back) belongs to the space:
:func:`thrifty.encoding.encoder_of`.
"""
