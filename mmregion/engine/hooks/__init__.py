# Each module adds its own import line below.
from .plrc_teacher_temp_hook import PLRCTeacherTempHook  # noqa
from .curriculum_hook import CCOPCurriculumHook  # noqa
from .rng_state_hook import RNGStateHook  # noqa: F401
from .checkpoint_hook import SafeCheckpointHook  # noqa: F401
