# Each module adds its own import line below.
from .checkpoint_hook import SafeCheckpointHook  # noqa: F401
from .curriculum_hook import CCOPCurriculumHook  # noqa
from .plrc_teacher_temp_hook import PLRCTeacherTempHook  # noqa
from .resume_lr_hook import ResumeLrHook  # noqa: F401
from .rng_state_hook import RNGStateHook  # noqa: F401
from .teacher_momentum_hook import CosineTeacherMomentumHook  # noqa: F401
