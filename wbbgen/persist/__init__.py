"""Files: the container (:mod:`wbbgen.persist.container`), what identifies a run
(:mod:`wbbgen.persist.fingerprint`) and training checkpoints
(:mod:`wbbgen.persist.checkpoint`). Saving and loading a trained generator, which needs
:class:`~wbbgen.AmortizedWBB`, is :mod:`wbbgen.io` (``wbbgen.save`` / ``wbbgen.load``); this
package knows nothing of it.
"""

from wbbgen.persist import checkpoint, container, fingerprint
from wbbgen.persist.container import FileFormatError, MismatchError

__all__ = ["container", "fingerprint", "checkpoint", "FileFormatError", "MismatchError"]
