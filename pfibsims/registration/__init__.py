"""Registration and drift: the transform between two modalities, and the drift along a stack.

* :mod:`.drift` -- :func:`estimate_drift`, slice to slice or against a drift-free reference;
* :mod:`.crossdrift` -- the cross-modal drift of one slice against a reference modality, and when it is too weak
  to trust (:func:`~.crossdrift.weak_linear`);
* :mod:`.pairwise` -- :func:`register`, the in-plane transform of one modality onto another;
* :mod:`.report` -- :class:`Registration` (a transform and its :class:`RegistrationReport`);
* :mod:`.views` -- the reduced in-memory views the estimates work on;
* :mod:`.levels` -- one pyramid level: the fixed samples and the prepared moving image;
* :mod:`.search` -- metric evaluation and the global search over transform parameters;
* :mod:`.significance` -- whether a placement of the search is significant (tile agreement);
* :mod:`.refinement` -- the refinement stages after the search (every level of a registration made in one
  batch), and the two-valued polish;
* :mod:`.refine` -- the optimisers of one level: Powell on the model's parameters, quadratic peak fits;
* :mod:`.flags` -- what the report flags about an accepted answer (at a bound, flat, a scale it lacks);
* :mod:`.phase` -- phase correlation of two slices (the slice-to-slice drift);
* :mod:`.metrics` -- mutual information and correlation metrics, numpy only;
* :mod:`.kernels` -- the compiled kernels of the metrics, the drift shift and the view's means (numpy twins).

Applying a drift or a transform is resampling: :func:`pfibsims.resampling.resample`
with ``transform=`` and ``drift=``.
"""

from .drift import estimate_drift
from .pairwise import register
from .report import RegisteredAffine, Registration, RegistrationReport

__all__ = ["RegisteredAffine", "Registration", "RegistrationReport", "estimate_drift", "register"]
